"""The proxy core: the upstream hop, header hygiene and the upstream's version range.

Forwards bytes; it must never import policy, identity or audit.
"""
