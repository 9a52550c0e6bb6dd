"""Rate limits: rules, the limiter and its storage breaker, and the answer headers.

Owns counting calls; it must never decide anything but the rate limit.
"""
