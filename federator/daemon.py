"""federator.daemon (being written)."""
