"""The pure decision core: values in, decisions out. No I/O, no clock, no logging.

The daemon and the simulator both call `federator.core.placements.decide`, so they run exactly
the same code. Time (`now`) and every piece of state are inputs.
"""
