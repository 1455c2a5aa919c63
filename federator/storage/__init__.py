"""federator.storage (see its owner's modules)."""
