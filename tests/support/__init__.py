"""Helpers shared by the test suites: loopback servers, HTTP clients.

Owns test plumbing only; must never be imported by the gateway package itself.
"""
