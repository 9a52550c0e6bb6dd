"""What the gateway knows about servers: their facts, how they are read and kept.

Owns server facts; it must never decide on a request (the gates do).
"""
