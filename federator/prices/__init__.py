"""federator.prices (see its owner's modules)."""
