"""Data sync: what to copy between object stores and when a dataset counts as replicated.

`plans` decides, from two listings, which objects to copy, skip or delete (pure, no I/O);
`parts` lays out multipart copies and computes the ETags they must produce (pure);
`manifests` is the model registry's manifest format (pure); `replication` is the async API the
daemon calls ("ensure dataset D is on cluster C"), which drives the copy engine in
`federator.storage` through a port.
"""
