"""Who is calling: credentials and the keystone, jwt and noauth modes.

Owns turning a request's token into credentials; it must never decide policy.
"""
