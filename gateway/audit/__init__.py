"""The audit trail: records, their redaction, the sealed chain, sinks and the CLI.

Owns what is written about every decision; it must never change a decision.
"""
