"""What the gateway knows about Nova: catalogue, schemas, policy defaults, faults,
microversions, paths and bodies. Pure knowledge: no I/O, and it imports nothing else
of the gateway.
"""
