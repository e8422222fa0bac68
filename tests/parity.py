"""What the differential tier compares: the objects an operator made for KubeRay's samples,
reduced to what a user can tell apart, and the differences between two such snapshots.

Normalising drops what differs between any two runs of the same operator (uids, times,
resource versions, the random suffix of a generated name, the created-by label) and turns
what is a set into a set (env by name, the flags of `ray start`), so that a difference
left over is one the operators make, not the run. Pure functions: unit-tested apart from
the clusters they read.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes.utils.quantity import parse_quantity

# The label each operator writes with its own name: the one difference by design.
CREATED_BY = "app.kubernetes.io/created-by"
GROUP_LABEL = "ray.io/group"
CLUSTER_LABEL = "ray.io/cluster"
# kube-api-access-<5 random characters>, and any other generated name's tail.
RANDOM_TAIL = re.compile(r"-[a-z0-9]{5}$")
# The apiserver's default service-node-port-range, from which it allocates node ports.
NODE_PORTS = range(30000, 32768)
# Set by the apiserver, the scheduler or the kubelet (here kwok), not by the operator.
POD_SPEC_RUNTIME = ("nodeName",)
# Fields of a Service the apiserver allocates.
SERVICE_ALLOCATED = ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy",
                     "internalTrafficPolicy", "sessionAffinity")  # fmt: skip
# Env values that are command lines: KubeRay joins their words with two spaces.
SPACED_ENV = ("KUBERAY_GEN_RAY_START_CMD", "KUBERAY_GEN_AUTOSCALER_START_CMD")
# Status fields that are quantities: "3G" and "3000000000" are one amount.
STATUS_QUANTITIES = ("desiredCPU", "desiredMemory", "desiredGPU", "desiredTPU")
# The kinds the tier lists in each sample's namespace, besides the samples' own kinds.
CHILD_KINDS = ("pods", "services", "serviceaccounts", "roles", "rolebindings", "jobs",
               "ingresses", "networkpolicies", "secrets")  # fmt: skip


def ray_start(command: list[str], args: list[str]) -> tuple[list[str], str] | None:
    """(sorted flags of `ray start`, the shell line around it) of a container, or None when
    it does not run `ray start`. The flags are a set to Ray; their order is not."""
    line = " ".join([*command, *args])
    match = re.search(r"ray start\b", line)
    if match is None:
        return None
    rest = line[match.end() :]
    end = min((i for i in (rest.find(";"), rest.find("&&")) if i >= 0), default=len(rest))
    try:
        words = shlex.split(rest[:end])
    except ValueError:  # an unbalanced quote: compare the words as they stand
        words = rest[:end].split()
    flags: list[str] = []
    for word in words:
        if word.startswith("-") or not flags:
            flags.append(word)
        else:  # "--port 6379": a value given as the next word
            flags[-1] = f"{flags[-1]}={word}"
    around = line[: match.start()] + "ray start <flags>" + rest[end:]
    return sorted(flags), " ".join(around.split())


def _generated(name: str) -> str:
    return RANDOM_TAIL.sub("-<random>", name)


def _container(container: dict[str, Any]) -> dict[str, Any]:
    out = dict(container)
    started = ray_start(out.get("command") or [], out.get("args") or [])
    if started is not None:
        out.pop("command", None)
        out.pop("args", None)
        out["rayStartFlags"], out["shell"] = started
    out["env"] = {
        e["name"]: {k: v for k, v in e.items() if k != "name"} for e in out.get("env", [])
    }
    for name in SPACED_ENV:
        if "value" in out["env"].get(name, {}):  # words split by any run of spaces
            out["env"][name]["value"] = " ".join(out["env"][name]["value"].split())
    out["volumeMounts"] = {_generated(m["name"]): m for m in out.get("volumeMounts", [])}
    for mount in out["volumeMounts"].values():
        mount["name"] = _generated(mount["name"])
    out["ports"] = {p.get("name") or str(p["containerPort"]): p for p in out.get("ports", [])}
    return out


def _metadata(meta: dict[str, Any]) -> dict[str, Any]:
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k != CREATED_BY}
    owners = [
        {k: o.get(k) for k in ("kind", "name", "controller", "blockOwnerDeletion")}
        for o in meta.get("ownerReferences") or []
    ]
    return {
        "labels": labels,
        "annotations": dict(meta.get("annotations") or {}),
        "ownerReferences": owners,
        "finalizers": sorted(meta.get("finalizers") or []),
    }


def pod(obj: dict[str, Any]) -> dict[str, Any]:
    spec = {k: v for k, v in obj["spec"].items() if k not in POD_SPEC_RUNTIME}
    for key in ("containers", "initContainers"):
        spec[key] = {c["name"]: _container(c) for c in spec.get(key) or []}
    volumes = {}
    for volume in spec.get("volumes") or []:
        volume = dict(volume, name=_generated(volume["name"]))
        volumes[volume["name"]] = volume
    spec["volumes"] = volumes
    return {"metadata": _metadata(obj["metadata"]), "spec": spec}


def service(obj: dict[str, Any]) -> dict[str, Any]:
    spec = {k: v for k, v in obj["spec"].items() if k not in SERVICE_ALLOCATED}
    ports = {}
    for port in spec.get("ports") or []:
        port = {k: v for k, v in port.items() if k != "nodePort"}
        ports[port.get("name") or str(port["port"])] = port
    spec["ports"] = ports
    spec["selector"] = {k: v for k, v in (spec.get("selector") or {}).items() if k != CREATED_BY}
    return {"metadata": _metadata(obj["metadata"]), "spec": spec}


def generic(obj: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}
    return {"metadata": _metadata(obj["metadata"]), **body}


def job(obj: dict[str, Any]) -> dict[str, Any]:
    spec = dict(obj["spec"])
    template = spec.pop("template", {})
    spec.pop("selector", None)  # carries the Job's uid
    labels = {k: v for k, v in (template.get("metadata", {}).get("labels") or {}).items()
              if k not in ("controller-uid", "batch.kubernetes.io/controller-uid")}  # fmt: skip
    pod_part = pod({"metadata": {"labels": labels}, "spec": template.get("spec", {})})
    return {"metadata": _metadata(obj["metadata"]), "spec": spec, "template": pod_part}


def owner_status(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    """The status fields of a RayCluster or RayJob that do not change from run to run."""
    status = dict(obj.get("status") or {})
    for key in ("lastUpdateTime", "observedGeneration", "startTime", "endTime",
                "stateTransitionTimes", "head", "jobId", "rayClusterName"):  # fmt: skip
        status.pop(key, None)
    conditions = {
        c["type"]: {k: c.get(k) for k in ("status", "reason")} for c in status.pop("conditions", [])
    }
    for key in STATUS_QUANTITIES:
        if key in status:
            status[key] = _amount(status[key])
    if "endpoints" in status:  # a NodePort Service's ports: each apiserver picks its own
        status["endpoints"] = {
            name: "<node port>" if value.isdigit() and int(value) in NODE_PORTS else value
            for name, value in status["endpoints"].items()
        }
    # Go's omitempty: a 0 or "" is written by one side and left out by the other.
    status = {k: v for k, v in status.items() if v not in (0, "", "0") or type(v) is bool}
    if kind == "RayJob" and "rayClusterStatus" in status:
        status["rayClusterStatus"] = owner_status(
            "RayCluster", {"status": status["rayClusterStatus"]}
        )
    return {**status, "conditions": conditions}


def _amount(quantity: str) -> str:
    try:
        return format(parse_quantity(quantity).normalize(), "f")
    except ValueError:
        return quantity


NORMALISE = {"Pod": pod, "Service": service, "Job": job}


def snapshot(objects: list[dict[str, Any]], owners: list[dict[str, Any]]) -> dict[str, Any]:
    """A namespace's objects, keyed so that the two operators' copies meet: pods by group
    (the group's pods are alike; their count is compared on its own), every other object
    by kind and name with a generated tail folded."""
    out: dict[str, Any] = {}
    counts: dict[str, int] = {}
    for obj in sorted(objects, key=lambda o: o["metadata"]["name"]):
        kind, meta = obj["kind"], obj["metadata"]
        if meta.get("deletionTimestamp"):
            continue
        if kind == "Pod":
            group = meta.get("labels", {}).get(GROUP_LABEL, _generated(meta["name"]))
            key = f"Pod/{meta.get('labels', {}).get(CLUSTER_LABEL, '')}/{group}"
            counts[key] = counts.get(key, 0) + 1
            out.setdefault(key, pod(obj))
            continue
        out[f"{kind}/{_generated(meta['name'])}"] = NORMALISE.get(kind, generic)(obj)
    for key, count in counts.items():
        out[key]["count"] = count
    for obj in owners:
        out[f"{obj['kind']}/{obj['metadata']['name']}.status"] = owner_status(obj["kind"], obj)
    return _fold_job_clusters(out, owners)


def _fold_job_clusters(snap: dict[str, Any], owners: list[dict[str, Any]]) -> dict[str, Any]:
    """A RayJob's cluster is named `<job>-<5 random characters>`: the name is written
    as `<job>-<generated>` wherever it appears (labels, env, service names, keys), and so
    is its job id."""
    text = json.dumps(snap, sort_keys=True)
    for obj in owners:  # the uid is random too (the GCS storage namespace defaults to it)
        if obj["metadata"].get("uid"):
            text = text.replace(obj["metadata"]["uid"], f"<uid of {obj['metadata']['name']}>")
    for obj in owners:
        status = obj.get("status") or {}
        for generated in (status.get("jobId"), status.get("rayClusterName")):
            if obj["kind"] == "RayJob" and generated and generated != obj["metadata"]["name"]:
                # arenastack gives the job id the cluster's suffix, KubeRay another one
                text = text.replace(generated, f"{obj['metadata']['name']}-<generated>")
    return json.loads(text)


def flatten(value: Any, path: str = "") -> dict[str, Any]:
    """Leaves by dotted path; a dict's keys are its children, a list is one leaf."""
    if isinstance(value, dict):  # an empty map is no leaf: Go leaves it out, Python writes {}
        out: dict[str, Any] = {}
        for key, child in value.items():
            out.update(flatten(child, f"{path}.{key}" if path else str(key)))
        return out
    return {path: value}


@dataclass(frozen=True)
class Difference:
    sample: str
    path: str  # "<kind>/<name>:<field path>"
    ours: Any
    kuberay: Any

    def __str__(self) -> str:
        return f"{self.sample} {self.path}: arenastack {self.ours!r}, KubeRay {self.kuberay!r}"


MISSING = "<absent>"


def differences(sample: str, ours: dict[str, Any], kuberay: dict[str, Any]) -> list[Difference]:
    out = []
    for key in sorted(set(ours) | set(kuberay)):
        if key not in ours or key not in kuberay:
            have = "present"
            out.append(Difference(sample, f"{key}:", have if key in ours else MISSING,
                                  have if key in kuberay else MISSING))  # fmt: skip
            continue
        a, b = flatten(ours[key]), flatten(kuberay[key])
        for field in sorted(set(a) | set(b)):
            if a.get(field, MISSING) != b.get(field, MISSING):
                out.append(Difference(sample, f"{key}:{field}", a.get(field, MISSING),
                                      b.get(field, MISSING)))  # fmt: skip
    return out


@dataclass(frozen=True)
class Allowed:
    """One reviewed difference: `samples` and `path` are shell-style patterns. With
    `may_vanish`, a difference that depends on how far each side got in the time given (a
    RayJob's state against a head where no Ray runs) need not show up in every run."""

    path: str
    reason: str
    samples: tuple[str, ...] = ("*",)
    may_vanish: bool = False

    def covers(self, difference: Difference) -> bool:
        return any(fnmatch.fnmatchcase(difference.sample, s) for s in self.samples) and (
            fnmatch.fnmatchcase(difference.path, self.path)
        )


def load_allowed(path: Path) -> list[Allowed]:
    entries = yaml.safe_load(path.read_text()) or []
    rules = []
    for entry in entries:
        if not entry.get("reason"):
            raise ValueError(f"{path}: the entry for {entry.get('path')!r} gives no reason")
        samples = entry.get("samples", "*")
        samples = (samples,) if isinstance(samples, str) else tuple(samples)
        rules.append(
            Allowed(entry["path"], entry["reason"], samples, bool(entry.get("may_vanish")))
        )
    return rules


def unexplained(
    found: list[Difference], rules: list[Allowed]
) -> tuple[list[Difference], list[Allowed]]:
    """(differences no rule covers, rules that covered nothing): both fail the tier, so
    the allow-list never hides a difference nor outlives one."""
    used: set[Allowed] = set()
    left = []
    for difference in found:
        rule = next((r for r in rules if r.covers(difference)), None)
        if rule is None:
            left.append(difference)
        else:
            used.add(rule)
    return left, [r for r in rules if r not in used and not r.may_vanish]
