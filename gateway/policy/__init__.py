"""Site policy: oslo.policy with Nova's rule names, compiled checks, files and reload.

Owns allow/deny for a rule, a target and credentials; it must never read a request.
"""
