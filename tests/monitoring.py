"""A real Prometheus for the tests, configured from scrape configs, and the dashboards' queries
asked of it as Grafana would (its variables filled in)."""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from arenastack_cluster.cluster import CHART_DIR, toolchain_bin
from arenastack_cluster.processes import Process, free_port, wait_for
from arenastack_dashboards import common

RULE_FILES = sorted((CHART_DIR / "rules").glob("*.rules.yaml"))
# Short enough for a test's minute of scrapes, as Grafana's $__rate_interval would be.
RATE_WINDOW = "15s"


def plain(expr: str) -> str:
    """A panel's query as Prometheus takes it: every variable as "all"."""
    return re.sub(r"\$(\w+)", ".*", expr.replace(common.RATE, RATE_WINDOW))


class Prometheus:
    def __init__(self, base: str, process: Process) -> None:
        self.base = base
        self.process = process

    def get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        query = "?" + urllib.parse.urlencode(params) if params else ""
        with urllib.request.urlopen(f"{self.base}{path}{query}", timeout=5) as resp:
            return json.loads(resp.read())

    def query(self, expr: str) -> list[dict[str, Any]]:
        body = self.get("/api/v1/query", {"query": expr})
        assert body["status"] == "success", (expr, body)
        return body["data"]["result"]

    def wait_for(self, what: str, expr: str, timeout: float) -> None:
        def ready() -> list[dict[str, Any]]:
            try:
                return self.query(expr)
            except OSError:  # not listening yet
                return []

        wait_for(what, ready, timeout, self.process)

    def label_values(self, variable_query: str) -> list[str]:
        """What Grafana offers for a `label_values(selector, label)` variable."""
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable_query)
        assert match, variable_query
        selector, label = match.groups()
        body = self.get(f"/api/v1/label/{label}/values", {"match[]": plain(selector)})
        return body["data"]

    def empty_panels(
        self, model: Mapping[str, Any], skip: re.Pattern[str] | None = None
    ) -> list[str]:
        """Panels of a dashboard whose queries return nothing (each named with its query);
        queries matching `skip` are not asked."""
        empty = []
        for title, expr in common.queries(model):
            if skip is not None and skip.search(expr):
                continue
            if not self.query(plain(expr)):
                empty.append(f"{model['title']} / {title}: {expr}")
        return empty

    def rule_health(self) -> dict[str, str]:
        groups = self.get("/api/v1/rules")["data"]["groups"]
        return {r["name"]: r["health"] for g in groups for r in g["rules"]}


@contextmanager
def prometheus(
    folder: Path, scrape_configs: Sequence[Mapping[str, Any]], rules: Sequence[Path] = RULE_FILES
) -> Iterator[Prometheus]:
    """Prometheus from the toolchain, scraping every second, with the chart's rules."""
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in rules],
        "scrape_configs": list(scrape_configs),
    }
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    process = Process(folder, "prometheus")
    process.start(
        [
            str(toolchain_bin(build=False) / "prometheus"),
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
    )
    try:
        yield Prometheus(f"http://127.0.0.1:{port}", process)
    finally:
        process.stop()


def static_job(
    name: str, targets: Mapping[str, Mapping[str, str]], honor_labels: bool = False
) -> dict[str, Any]:
    """A scrape job over `targets` (address -> the target labels a monitor would give it)."""
    return {
        "job_name": name,
        "honor_labels": honor_labels,
        "static_configs": [
            {"targets": [address], "labels": dict(labels)} for address, labels in targets.items()
        ],
    }


def pod_job(
    name: str,
    kubeconfig: Path,
    namespaces: Sequence[str],
    keep: Mapping[str, str],
    port: str,
    labels: Mapping[str, str],
    honor_labels: bool = False,
) -> dict[str, Any]:
    """A scrape job as the Prometheus operator makes of a PodMonitor: pods found through the
    apiserver, kept where each pod label in `keep` matches its regex, scraped on the container
    port named `port`, with the target labels namespace, pod and `labels` (target label ->
    pod label)."""

    def meta(label: str) -> str:
        return "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", label)

    relabel: list[dict[str, Any]] = [
        {"source_labels": [meta(label)], "regex": regex, "action": "keep"}
        for label, regex in keep.items()
    ]
    relabel += [
        {"source_labels": ["__meta_kubernetes_pod_container_port_name"], "regex": port,
         "action": "keep"},
        {"source_labels": ["__meta_kubernetes_pod_phase"], "regex": "Running", "action": "keep"},
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
    ]  # fmt: skip
    relabel += [
        {"source_labels": [meta(label)], "target_label": target} for target, label in labels.items()
    ]
    return {
        "job_name": name,
        "honor_labels": honor_labels,
        "kubernetes_sd_configs": [
            {"role": "pod", "kubeconfig_file": str(kubeconfig),
             "namespaces": {"names": list(namespaces)}}
        ],
        "relabel_configs": relabel,
    }  # fmt: skip


def alert_names(path: Path) -> set[str]:
    return set(re.findall(r"- alert: (\w+)", path.read_text()))
