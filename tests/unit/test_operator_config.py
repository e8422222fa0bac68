"""Flags and environment of `python -m arenastack_operator`."""

import pytest

from arenastack_operator.config import ConfigError, parse

POD = {"POD_NAMESPACE": "arenastack-system", "POD_NAME": "op-7d9f-abc"}


def test_defaults_in_a_pod(tmp_path):
    cfg = parse([], POD, serviceaccount_namespace_file=tmp_path / "none")
    assert cfg.clusterwide and cfg.namespaces == ()
    assert (cfg.health_port, cfg.metrics_port) == (8081, 8080)
    assert cfg.bind_address == "0.0.0.0"
    assert cfg.leader_elect
    assert (cfg.lease_namespace, cfg.lease_name) == ("arenastack-system", "arenastack-operator")
    assert cfg.identity == "op-7d9f-abc"
    assert (cfg.timing.lease_duration, cfg.timing.renew_deadline) == (15, 10)
    assert cfg.log_level == "INFO"
    assert cfg.raycluster_controller


def test_flags_win_over_environment(tmp_path):
    env = {**POD, "ARENASTACK_HEALTH_PORT": "9001", "ARENASTACK_METRICS_PORT": "9002"}
    cfg = parse(["--health-port", "7001", "--log-level", "debug"], env)
    assert (cfg.health_port, cfg.metrics_port, cfg.log_level) == (7001, 9002, "DEBUG")


def test_namespaces_from_flags_or_comma_separated_env():
    assert parse(["--namespace", "a", "--namespace", "b"], POD).namespaces == ("a", "b")
    cfg = parse([], {**POD, "ARENASTACK_NAMESPACE": "a, b,"})
    assert cfg.namespaces == ("a", "b") and not cfg.clusterwide


def test_lease_namespace_falls_back_to_the_service_account(tmp_path):
    sa = tmp_path / "namespace"
    sa.write_text("from-sa\n")
    assert parse([], {}, serviceaccount_namespace_file=sa).lease_namespace == "from-sa"


def test_outside_a_pod_the_lease_namespace_is_required(tmp_path):
    with pytest.raises(ConfigError, match="--lease-namespace"):
        parse([], {}, serviceaccount_namespace_file=tmp_path / "none")
    cfg = parse(["--leader-elect=false"], {}, serviceaccount_namespace_file=tmp_path / "none")
    assert not cfg.leader_elect


def test_identity_is_unique_per_process_without_pod_name():
    env = {"POD_NAMESPACE": "x"}
    assert parse([], env).identity != parse([], env).identity


@pytest.mark.parametrize(
    ("argv", "env", "named"),
    [
        (["--health-port", "http"], {}, "--health-port"),
        ([], {"ARENASTACK_METRICS_PORT": "70000"}, "ARENASTACK_METRICS_PORT"),
        (["--lease-duration", "-1"], {}, "--lease-duration"),
        (["--leader-elect", "maybe"], {}, "--leader-elect"),
        (["--log-level", "LOUD"], {}, "--log-level"),
        (["--lease-duration", "5", "--renew-deadline", "6"], {}, "lease duration"),
        (["--health-port", "8000", "--metrics-port", "8000"], {}, "both 8000"),
        (["--kubeconfig", "/nonexistent/kubeconfig"], {}, "no such file"),
    ],
)
def test_bad_values_get_an_error_naming_them(argv, env, named):
    with pytest.raises(ConfigError, match=named):
        parse(argv, {**POD, **env})


def test_raycluster_controller_can_be_disabled():
    assert not parse(["--disable-raycluster"], POD).raycluster_controller
    assert not parse([], {**POD, "ARENASTACK_DISABLE_RAYCLUSTER": "true"}).raycluster_controller
