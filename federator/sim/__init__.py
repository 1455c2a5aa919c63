"""federator.sim (see its owner's modules)."""
