"""federator.sandbox (see its owner's modules)."""
