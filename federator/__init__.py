"""federator: burst an on-prem Kueue GPU cluster to cloud capacity, priced by a cost model."""

__version__ = "0.1.0"
