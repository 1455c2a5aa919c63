"""federator.federation (see its owner's modules)."""
