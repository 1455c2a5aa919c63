"""How the policy file points at secrets and clusters without ever containing them.

Credentials live where the platform already keeps them — an environment variable, a file
mounted into the pod, or a Kubernetes Secret — and the file only names that place. The
connection to a cluster works the same way: a kubeconfig file and context, a kubeconfig kept
in a Secret (as Kueue MultiKueue does), or the pod's own service account.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from federator.policy.base import ConfigPath, EnvVarName, KubeName, Section, Switch


class EnvCredentials(Section):
    """Names of environment variables that hold the keys (the values stay in the environment)."""

    access_key_id: EnvVarName
    """Environment variable holding the access key ID, e.g. `ONPREM_S3_ACCESS_KEY_ID`."""

    secret_access_key: EnvVarName
    """Environment variable holding the secret access key, e.g. `ONPREM_S3_SECRET_ACCESS_KEY`."""

    session_token: EnvVarName | None = Field(default=None, examples=["ONPREM_S3_SESSION_TOKEN"])
    """Environment variable holding a session token, for temporary credentials only."""


class SecretCredentials(Section):
    """A Kubernetes Secret (in the cluster federator runs in) that holds the keys."""

    name: KubeName
    """Name of the Secret."""

    namespace: KubeName | None = Field(default=None, examples=["federator"])
    """Namespace of the Secret; federator's own namespace when omitted."""

    access_key_id_key: str = "access_key_id"
    """Key inside the Secret's `data` whose value is the access key ID."""

    secret_access_key_key: str = "secret_access_key"
    """Key inside the Secret's `data` whose value is the secret access key."""


class CredentialsRef(Section):
    """Where to find the keys of an object store. Set exactly one of `env`, `file`,
    `kubernetes_secret` or `default_chain`; the keys themselves never go in this file."""

    env: EnvCredentials | None = None
    """Read the keys from environment variables."""

    file: ConfigPath | None = Field(default=None, examples=["/var/run/secrets/s3/keys.json"])
    """Read the keys from a file: JSON `{"access_key_id": ..., "secret_access_key": ...}` or an
    AWS shared-credentials INI file (choose the section with `profile`)."""

    profile: str | None = Field(default=None, examples=["burst"])
    """Section of an INI credentials file to use (`default` when omitted); only with `file`."""

    kubernetes_secret: SecretCredentials | None = None
    """Read the keys from a Kubernetes Secret."""

    default_chain: Switch = False
    """Use boto3's standard provider chain (environment, shared files, IAM role / IRSA)."""

    @model_validator(mode="after")
    def _exactly_one_source(self) -> CredentialsRef:
        chosen = [
            name
            for name, present in (
                ("env", self.env is not None),
                ("file", self.file is not None),
                ("kubernetes_secret", self.kubernetes_secret is not None),
                ("default_chain", self.default_chain),
            )
            if present
        ]
        if len(chosen) != 1:
            found = ", ".join(chosen) if chosen else "none"
            raise ValueError(
                "set exactly one of env, file, kubernetes_secret or default_chain: true "
                f"(found: {found})"
            )
        if self.profile is not None and self.file is None:
            raise ValueError("`profile` only applies to an INI credentials `file`")
        return self

    @property
    def kind(self) -> Literal["env", "file", "kubernetes_secret", "default_chain"]:
        if self.env is not None:
            return "env"
        if self.file is not None:
            return "file"
        if self.kubernetes_secret is not None:
            return "kubernetes_secret"
        return "default_chain"


class KubeconfigSecret(Section):
    """A Kubernetes Secret holding a kubeconfig, as Kueue MultiKueue keeps worker access."""

    name: KubeName
    """Name of the Secret."""

    namespace: KubeName | None = None
    """Namespace of the Secret; federator's own namespace when omitted."""

    key: str = "kubeconfig"
    """Key inside the Secret's `data` that holds the kubeconfig."""


class Connection(Section):
    """How federator reaches a cluster's API server. Set exactly one of `kubeconfig`,
    `kubeconfig_secret` or `in_cluster: true`."""

    kubeconfig: ConfigPath | None = None
    """Path to a kubeconfig file."""

    context: str | None = None
    """Context to use from the kubeconfig; its `current-context` when omitted."""

    kubeconfig_secret: KubeconfigSecret | None = None
    """Read the kubeconfig from a Kubernetes Secret (recommended in production)."""

    in_cluster: Switch = False
    """Use the service account of the pod federator runs in (for the cluster it runs on)."""

    @model_validator(mode="after")
    def _exactly_one_way(self) -> Connection:
        ways = [self.kubeconfig is not None, self.kubeconfig_secret is not None, self.in_cluster]
        if sum(ways) != 1:
            raise ValueError("set exactly one of kubeconfig, kubeconfig_secret or in_cluster: true")
        if self.in_cluster and self.context is not None:
            raise ValueError("`context` does not apply with in_cluster: true")
        return self
