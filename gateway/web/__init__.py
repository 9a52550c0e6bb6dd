"""The web layer: HTTP entry points, the admin listener, workers and signals.

Owns wiring configuration into a Gate; it must never decide anything itself.
"""
