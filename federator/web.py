"""federator.web (being written)."""
