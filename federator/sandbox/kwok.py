"""KWOK's stages: how fake nodes become Ready and fake pods run, complete or fail.

Standalone `kwok` has no built-in stages, so we hand it KWOK's own Stage files from the
kwok module (copied next to the binary by build.sh, else read from the Go module cache).
Pods complete after `pod-complete.stage.kwok.x-k8s.io/delay` (set `.../jitter-delay` to the
same value: KWOK uses the jitter when it is not larger than the delay). One stage is ours:
a pod annotated `federator.io/kwok-fail: "true"` fails (exit code 1) after the same delay,
for tests of failing jobs.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from federator.sandbox.binaries import assets_dir, module_dir
from federator.sandbox.layout import KWOK_VERSION

NODE_ANNOTATION = "kwok.x-k8s.io/node"
FAIL_ANNOTATION = "federator.io/kwok-fail"
COMPLETE_DELAY_ANNOTATION = "pod-complete.stage.kwok.x-k8s.io/delay"
COMPLETE_JITTER_ANNOTATION = "pod-complete.stage.kwok.x-k8s.io/jitter-delay"

STAGE_FILES = (
    "node/fast/node-initialize.yaml",
    "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "pod/general/pod-create.yaml",
    "pod/general/pod-init-container-running.yaml",
    "pod/general/pod-init-container-completed.yaml",
    "pod/general/pod-ready.yaml",
    "pod/general/pod-complete.yaml",
    "pod/general/pod-delete.yaml",
)


def completion_annotations(seconds: float) -> dict[str, str]:
    """Pod annotations that make KWOK complete a Job's pod after exactly `seconds`."""
    value = f"{int(seconds * 1000)}ms"
    return {COMPLETE_DELAY_ANNOTATION: value, COMPLETE_JITTER_ANNOTATION: value}


def stage_root() -> Path:
    """Where KWOK's stage files are: build.sh's copy, else the Go module cache."""
    copied = assets_dir("kwok") / "stage"
    if copied.is_dir():
        return copied
    source = module_dir("sigs.k8s.io/kwok", KWOK_VERSION)
    if source is None:
        raise FileNotFoundError(
            f"KWOK {KWOK_VERSION} stage files not found; run scripts/sandbox/build.sh kwok"
        )
    return source / "kustomize" / "stage"


def stages() -> list[dict[str, Any]]:
    root = stage_root()
    loaded = [yaml.safe_load((root / name).read_text()) for name in STAGE_FILES]
    complete = next(s for s in loaded if s["metadata"]["name"] == "pod-complete")
    failing = _failing_variant(complete)
    _exclude_failing(complete)
    return [*loaded, failing]


def _annotation_key(name: str) -> str:
    return f'.metadata.annotations["{name}"]'


def _exclude_failing(complete: dict[str, Any]) -> None:
    complete["spec"]["selector"]["matchExpressions"].append(
        {"key": _annotation_key(FAIL_ANNOTATION), "operator": "NotIn", "values": ["true"]}
    )


def _failing_variant(complete: dict[str, Any]) -> dict[str, Any]:
    failing = copy.deepcopy(complete)
    failing["metadata"]["name"] = "federator-pod-fail"
    failing["spec"]["selector"]["matchExpressions"].append(
        {"key": _annotation_key(FAIL_ANNOTATION), "operator": "In", "values": ["true"]}
    )
    template: str = failing["spec"]["next"]["statusTemplate"]
    for old, new in (
        ("exitCode: 0", "exitCode: 1"),
        ("reason: Completed", "reason: Error"),
        ("phase: Succeeded", "phase: Failed"),
    ):
        if old not in template:
            raise ValueError(f"KWOK pod-complete stage changed: {old!r} not found")
        template = template.replace(old, new)
    failing["spec"]["next"]["statusTemplate"] = template
    return failing


def write_stages(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump_all(stages(), sort_keys=False))
