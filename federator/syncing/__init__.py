"""federator.syncing (see its owner's modules)."""
