"""federator.kube (see its owner's modules)."""
