"""The chart's Grafana dashboards as code: one module per dashboard, each with a `build()`
that returns the SDK's dashboard builder; `python -m arenastack_dashboards` renders them all
into charts/arenastack/dashboards/."""
