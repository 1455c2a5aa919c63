"""The policy file: one YAML file that says what federator may do.

Public API (everything else in this package is an implementation detail):

- `load_policy(path, check_files=False) -> FederatorConfig` reads and validates a file;
  `parse_policy(text, source_name, base_dir=None, check_files=False)` does the same for text.
  Both raise `PolicyFileError`, a `UserError` whose `errors` are `LocatedError`s printed as
  `FILE:LINE:COL: field.path: msg`. `check_files` also checks that the kubeconfigs, contexts,
  credentials and catalogs the file points at exist here (targets.py).
- `to_decision_policy(config) -> federator.core.policy.DecisionPolicy` for the decision core.
- `may_burst(config, JobFacts(...)) -> Eligibility` applies the opt-out label, `burst_rules`,
  the queue's `burst` mode and the tenant, in that order (eligibility.py).
- `store_access`, `cluster_access`, `resolve_credentials` (credentials.py) resolve references
  at the edge; `dataset_uri`, `staging_uri` (locations.py) say where data lives per cluster.
- `json_schema()` is the JSON Schema editors use to complete and check the file.
"""

from __future__ import annotations

from federator.policy.clusters import Cluster, ObjectStore, Pool
from federator.policy.config import FederatorConfig, resident_datasets
from federator.policy.credentials import (
    ClusterAccess,
    S3Credentials,
    StoreAccess,
    cluster_access,
    resolve_credentials,
    store_access,
)
from federator.policy.decision import to_decision_policy
from federator.policy.eligibility import Eligibility, JobFacts, may_burst
from federator.policy.errors import LocatedError, PolicyFileError
from federator.policy.jsonschema import json_schema
from federator.policy.loading import load_policy, parse_policy
from federator.policy.locations import dataset_uri, staging_uri

__all__ = [
    "Cluster",
    "ClusterAccess",
    "Eligibility",
    "FederatorConfig",
    "JobFacts",
    "LocatedError",
    "ObjectStore",
    "PolicyFileError",
    "Pool",
    "S3Credentials",
    "StoreAccess",
    "cluster_access",
    "dataset_uri",
    "json_schema",
    "load_policy",
    "may_burst",
    "parse_policy",
    "resident_datasets",
    "resolve_credentials",
    "staging_uri",
    "store_access",
    "to_decision_policy",
]
