"""Follows every change of Ray pods and checks, at each one, that no group holds more live pods
than it may.

A list, then a watch from the list's resourceVersion (re-listing when the apiserver answers 410
Gone), so the checks see every state the apiserver passed through for these pods, in order: a
poll could miss a surplus pod that lived for a moment. Live means not terminating (no
deletionTimestamp). Bounds are per (namespace, cluster, group); a pod of a group without a bound
is a violation too.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.watch.watch import iter_resp_lines

from arenastack_operator.raycluster import names

GroupKey = tuple[str, str, str]  # (namespace, cluster, group)
GONE = 410
WATCH_WINDOW_S = 5  # each watch request ends after this long, so stop() is noticed soon


@dataclass(frozen=True)
class _Pod:
    key: GroupKey
    live: bool


def group_key(pod: dict[str, Any]) -> GroupKey:
    meta = pod["metadata"]
    labels = meta.get("labels") or {}
    return (
        meta["namespace"],
        labels.get(names.LABEL_CLUSTER, ""),
        labels.get(names.LABEL_GROUP, ""),
    )


class PodCountWatch(threading.Thread):
    def __init__(self, api: client.ApiClient, namespaces: Iterable[str]) -> None:
        super().__init__(name="pod-count-watch", daemon=True)
        self._core = client.CoreV1Api(api)
        self._namespaces = set(namespaces)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._pods: dict[str, _Pod] = {}  # by uid
        self._bounds: dict[GroupKey, int] = {}
        self._pending_lower: dict[GroupKey, int] = {}
        self.peak: dict[GroupKey, int] = {}
        self.violations: list[str] = []
        self.events = 0
        self.lists = 0
        self.pods_seen: set[str] = set()
        self.error: BaseException | None = None
        self.synced = threading.Event()

    # -- bounds (called by the test) ------------------------------------------------------------

    def allow(self, key: GroupKey, count: int) -> None:
        """Raise the bound now: call before the change that lets the group grow."""
        with self._lock:
            self._bounds[key] = max(self._bounds.get(key, 0), count)
            self._pending_lower.pop(key, None)

    def lower(self, key: GroupKey, count: int) -> None:
        """Tighten the bound to `count` once the group is seen at or below it: call after a
        scale-down no running reconcile can still be acting against."""
        with self._lock:
            self._pending_lower[key] = count
            self._tighten(key)

    def live_counts(self) -> dict[GroupKey, int]:
        with self._lock:
            return self._counts()

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=WATCH_WINDOW_S * 3)

    # -- the thread -----------------------------------------------------------------------------

    def run(self) -> None:
        try:
            resource_version = self._relist()
            self.synced.set()
            while not self._stopping.is_set():
                resource_version = self._watch(resource_version)
        except BaseException as e:  # reported by the test, which asserts error is None
            self.error = e
            self.synced.set()

    def _relist(self) -> str:
        resp = self._core.list_pod_for_all_namespaces(
            label_selector=names.LABEL_CLUSTER, _preload_content=False
        )
        body = json.loads(resp.data)
        with self._lock:
            self.lists += 1
            self._pods = {}
            for pod in body["items"]:
                self._record(pod)
            for key in {p.key for p in self._pods.values()}:
                self._check(key)
        return str(body["metadata"]["resourceVersion"])

    def _watch(self, resource_version: str) -> str:
        resp = self._core.list_pod_for_all_namespaces(
            label_selector=names.LABEL_CLUSTER,
            watch=True,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_WINDOW_S,
            _preload_content=False,
        )
        try:
            for line in iter_resp_lines(resp):
                event = json.loads(line)
                obj = event["object"]
                if event["type"] == "ERROR":
                    if obj.get("code") == GONE:
                        return self._relist()
                    raise RuntimeError(f"watch error: {obj}")
                resource_version = obj["metadata"]["resourceVersion"]
                if event["type"] == "BOOKMARK":
                    continue
                with self._lock:
                    self.events += 1
                    if event["type"] == "DELETED":
                        self._pods.pop(obj["metadata"]["uid"], None)
                    else:
                        self._record(obj)
                    self._check(group_key(obj))
        finally:
            resp.close()
            resp.release_conn()
        return resource_version

    # -- bookkeeping (under the lock) -----------------------------------------------------------

    def _record(self, pod: dict[str, Any]) -> None:
        key = group_key(pod)
        if key[0] not in self._namespaces:
            return
        uid = pod["metadata"]["uid"]
        self.pods_seen.add(uid)
        self._pods[uid] = _Pod(key, not pod["metadata"].get("deletionTimestamp"))

    def _counts(self) -> dict[GroupKey, int]:
        counts: dict[GroupKey, int] = {}
        for pod in self._pods.values():
            if pod.live:
                counts[pod.key] = counts.get(pod.key, 0) + 1
        return counts

    def _check(self, key: GroupKey) -> None:
        if key[0] not in self._namespaces:
            return
        count = sum(1 for p in self._pods.values() if p.live and p.key == key)
        self.peak[key] = max(self.peak.get(key, 0), count)
        bound = self._bounds.get(key)
        if bound is None:
            self.violations.append(f"{key}: {count} live pods of a group with no bound")
        elif count > bound:
            self.violations.append(f"{key}: {count} live pods, at most {bound} allowed")
        self._tighten(key)

    def _tighten(self, key: GroupKey) -> None:
        target = self._pending_lower.get(key)
        if target is None:
            return
        if sum(1 for p in self._pods.values() if p.live and p.key == key) <= target:
            self._bounds[key] = target
            del self._pending_lower[key]
