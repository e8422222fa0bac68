"""What every dashboard shares: the Prometheus data source variable, panel shapes, histogram
quantiles, and rendering to the JSON Grafana loads (with panel ids and query ids assigned)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final, TypeVar

from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.builders.dashboard import (
    Dashboard,
    DatasourceVariable,
    QueryVariable,
    Row,
)
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableRefresh, VariableSort

TAG: Final = "arenastack"
DATASOURCE: Final = DataSourceRef(type_val="prometheus", uid="${datasource}")
# Grafana's own choice of a rate window that fits the scrape interval and the zoom.
RATE: Final = "$__rate_interval"
QUANTILES: Final = (0.5, 0.9, 0.99)
# Panel widths on Grafana's 24-column grid.
FULL, HALF, THIRD, QUARTER = 24, 12, 8, 6

Query = tuple[str, str]  # (PromQL expression, legend)


def dashboard(uid: str, title: str, description: str) -> Dashboard:
    return (
        Dashboard(f"arenastack / {title}")
        .uid(f"arenastack-{uid}")
        .description(description)
        .tags([TAG])
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .with_variable(DatasourceVariable("datasource").label("Data source").type("prometheus"))
    )


def variable(name: str, label: str, query: str) -> QueryVariable:
    """A multi-value variable from `label_values(...)`, All by default."""
    return (
        QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .include_all(True)
        .all_value(".*")
        .multi(True)
    )


def row(title: str) -> Row:
    return Row(title)


def graph(
    title: str,
    unit: str,
    queries: Sequence[Query],
    description: str = "",
    span: int = HALF,
    height: int = 8,
) -> timeseries.Panel:
    panel = timeseries.Panel().fill_opacity(10)
    return _filled(panel, title, unit, queries, description, span, height)


def single(
    title: str,
    unit: str,
    queries: Sequence[Query],
    description: str = "",
    span: int = QUARTER,
    height: int = 4,
) -> stat.Panel:
    return _filled(stat.Panel(), title, unit, queries, description, span, height)


P = TypeVar("P", timeseries.Panel, stat.Panel)


def _filled(
    panel: P,
    title: str,
    unit: str,
    queries: Sequence[Query],
    description: str,
    span: int,
    height: int,
) -> P:
    """What every panel has: title, unit, the data source, its place and its queries A, B..."""
    panel = (
        panel.title(title)
        .description(description)
        .unit(unit)
        .datasource(DATASOURCE)
        .span(span)
        .height(height)
    )
    for i, (expr, legend) in enumerate(queries):
        panel = panel.with_target(
            prometheus.Dataquery().ref_id(chr(ord("A") + i)).expr(expr).legend_format(legend)
        )
    return panel


def rate(metric: str, selector: str, by: str = "") -> str:
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({metric}{{{selector}}}[{RATE}]))"


def quantiles(histogram: str, selector: str, by: str = "", legend: str = "") -> list[Query]:
    """p50, p90 and p99 of a Prometheus histogram (`histogram` without `_bucket`)."""
    grouping = ", ".join(["le", *([by] if by else [])])
    suffix = f" {legend}" if legend else ""
    return [
        (
            f"histogram_quantile({q}, sum by ({grouping}) "
            f"(rate({histogram}_bucket{{{selector}}}[{RATE}])))",
            f"p{round(q * 100)}{suffix}",
        )
        for q in QUANTILES
    ]


# -- rendering ----------------------------------------------------------------------------------


def render(board: Dashboard) -> dict[str, Any]:
    model = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    for i, panel in enumerate(all_panels(model), start=1):
        panel["id"] = i
    return model


def to_json(model: Mapping[str, Any]) -> str:
    return json.dumps(model, indent=2, sort_keys=True) + "\n"


def all_panels(model: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in model.get("panels") or []:
        yield panel
        yield from panel.get("panels") or []


def queries(model: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expression) of every query of every panel."""
    return [
        (panel.get("title", ""), target["expr"])
        for panel in all_panels(model)
        for target in panel.get("targets") or []
    ]


def variable_queries(model: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(variable name, its label_values query) of the query variables."""
    return [
        (v["name"], v["query"])
        for v in (model.get("templating") or {}).get("list") or []
        if v.get("type") == "query"
    ]
