"""Benchmarks of the gateway: the macro run (``python -m bench.run``) and the micro run.

Owns measuring only; it must never change gateway behaviour nor reach beyond loopback.
"""
