"""TLS: the listeners' certificates and how the gateway verifies Nova, Keystone, Redis
and RabbitMQ with the deployment's own CA.

Owns every TLS setting the gateway makes; it must never build a client that skips
verification of its peer, nor look at a request.
"""
