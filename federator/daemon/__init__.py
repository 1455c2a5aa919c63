"""The daemon: the composition root of `federator run` and `federator plan`.

One module per concept; `assembly` is the one place that creates the edges and the
federation, and `serving` runs them:

- `policy_file`: the policy in force (`PolicyHolder`) and the metric series it implies
- `connections`: a Kubernetes client per cluster, and the Secrets read through them
- `observers`: what the on-prem and cloud observers watch, as the policy says
- `data_gate`: the federation's port to the data (replicas out, outputs back)
- `credentials`: every credential registered with the log redactor; insecure stores named
- `assembly`: `Parts` and `assemble`, the composition of one process
- `telling`: decisions told as log lines, /debug/decisions, Events and budget warnings
- `replicas`: the dataset replicas the policy defines, and one re-sync round
- `loops`: the background loops around the federation
- `reloading`: a reloaded policy file reaching the running parts
- `serving`: the entry points `run` and `plan`, the signals and the shutdown

The CLI calls the entry points re-exported here (`daemon.run`, `daemon.plan`, and the
`connect_cluster` and `onprem_observer` its one-shot commands share), looking them up on this
package at call time.
"""

from federator.daemon.connections import connect_cluster
from federator.daemon.observers import onprem_observer
from federator.daemon.serving import plan, run

__all__ = ["connect_cluster", "onprem_observer", "plan", "run"]
