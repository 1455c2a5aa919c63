"""The only code that talks to Kubernetes: clients, reflectors, conversions, cluster adapters.

`clients.connect` opens one client per kubeconfig context; `onprem.OnPremCluster` and
`cloud.CloudCluster` implement the federation ports on top of reflected caches; `convert` holds
every label, annotation and field path federator reads or writes.
"""
