"""nova-gateway: a policy-enforcing reverse proxy for the OpenStack Nova compute API."""

__version__ = "0.1.0"
