"""federator.policy (see its owner's modules)."""
