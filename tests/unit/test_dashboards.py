"""The dashboards as rendered from charts/dashboards: each is what the chart ships, every panel
asks Prometheus something, and each resource dashboard is filtered by its variables.

That every query parses and returns data from real scrapes is the integration tier's part
(tests/integration/test_monitoring.py)."""

from __future__ import annotations

import re

import pytest

from arenastack_dashboards import common
from arenastack_dashboards.__main__ import CHART_DASHBOARDS, DASHBOARDS, rendered

MODELS = rendered()
# The variables each resource dashboard filters every panel by.
SCOPED = {
    "serving": ("namespace", "inferencedeployment"),
    "ray": ("namespace", "raycluster"),
    "operator": ("job",),
}


def test_the_chart_ships_exactly_what_the_code_renders() -> None:
    shipped = {p.stem: p.read_text() for p in CHART_DASHBOARDS.glob("*.json")}
    assert shipped == {name: common.to_json(model) for name, model in MODELS.items()}


@pytest.mark.parametrize("name", DASHBOARDS)
def test_every_panel_has_queries_and_a_unique_id(name: str) -> None:
    model = MODELS[name]
    panels = [p for p in common.all_panels(model) if p["type"] != "row"]
    assert panels
    assert all(p.get("targets") for p in panels), [p["title"] for p in panels if not p["targets"]]
    ids = [p["id"] for p in common.all_panels(model)]
    assert len(ids) == len(set(ids))
    for panel in panels:
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(set(ref_ids)) == len(ref_ids) and all(ref_ids), panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


@pytest.mark.parametrize("name", DASHBOARDS)
def test_uid_title_and_datasource_variable(name: str) -> None:
    model = MODELS[name]
    assert model["uid"] == f"arenastack-{name}"
    assert model["title"] == f"arenastack / {name}"
    variables = model["templating"]["list"]
    assert variables[0]["type"] == "datasource" and variables[0]["query"] == "prometheus"


@pytest.mark.parametrize("name", sorted(SCOPED))
def test_every_query_of_a_resource_dashboard_is_filtered_by_its_variables(name: str) -> None:
    model = MODELS[name]
    declared = {v for v, _ in common.variable_queries(model)}
    assert set(SCOPED[name]) <= declared
    for title, expr in common.queries(model):
        for var in SCOPED[name]:
            assert f"${var}" in expr, f"{name} / {title}: {expr} ignores ${var}"


def test_the_arena_dashboard_filters_evaluation_panels_by_evaluation() -> None:
    for title, expr in common.queries(MODELS["arena"]):
        if "arenastack_operator_arenaevaluation_" in expr:
            assert "$arenaevaluation" in expr, title


def test_variables_are_multi_value_and_default_to_all() -> None:
    for model in MODELS.values():
        for variable in model["templating"]["list"][1:]:
            assert variable["multi"] and variable["includeAll"] and variable["allValue"] == ".*"
            assert re.fullmatch(r"label_values\(.+, \w+\)", variable["query"])


def test_histogram_quantiles_group_by_le() -> None:
    for model in MODELS.values():
        for title, expr in common.queries(model):
            if expr.startswith("histogram_quantile("):
                assert "sum by (le" in expr and "_bucket{" in expr, title
