"""Pure parts of the local node: env resolution, quantities, the image map, volumes."""

from __future__ import annotations

from pathlib import Path

import pytest

from arenastack_cluster.localnode import quantity, volumes
from arenastack_cluster.localnode.config import IMAGES_CONFIG, NodeConfig
from arenastack_cluster.localnode.envresolve import (
    ConfigError,
    EnvContext,
    command_line,
    container_env,
    expand,
)
from arenastack_cluster.localnode.images import ImageMap, ImageNotMapped, RuntimeMissing

POD = {
    "metadata": {
        "name": "p",
        "namespace": "ns",
        "uid": "u-1",
        "labels": {"app": "web", "tier": "front"},
        "annotations": {"note": "hi"},
    },
    "spec": {
        "nodeName": "localnode",
        "serviceAccountName": "sa",
        "containers": [
            {"name": "c", "image": "python:3.11",
             "resources": {"limits": {"cpu": "1500m", "memory": "1Gi"},
                           "requests": {"cpu": "250m"}}},
        ],
    },
    "status": {"podIP": "10.0.0.5"},
}  # fmt: skip
STORE = {
    ("configmap", "ns", "cm"): {"k": "v", "other": "o"},
    ("secret", "ns", "s"): {"password": "pw"},
}


def lookup(kind: str, ns: str, name: str) -> dict[str, str] | None:
    return STORE.get((kind, ns, name))


def ctx(base: dict[str, str] | None = None) -> EnvContext:
    return EnvContext(POD, lookup, {"cpu": "8", "memory": "32Gi"}, base or {})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(A)-x", "1-x"),
        ("$$(A)", "$(A)"),
        ("$(MISSING)", "$(MISSING)"),
        ("$A $(A", "$A $(A"),
        ("a$", "a$"),
        ("$$$(A)", "$1"),
    ],
)
def test_expand_follows_kubelet_rules(text, expected):
    assert expand(text, {"A": "1"}) == expected


def test_env_sources_and_order():
    container = {
        "name": "c",
        "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"},
                    {"secretRef": {"name": "s"}}],
        "env": [
            {"name": "CM_k", "value": "overridden"},
            {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "TIER", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['tier']"}}},
            {"name": "LABELS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {"name": "CPU_M", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu",
                                                                 "divisor": "1m"}}},
            {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory",
                                                               "divisor": "1Mi"}}},
            {"name": "URL", "value": "http://$(IP):$(PORT)/$(NAME)"},
            {"name": "GONE", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "x",
                                                               "optional": True}}},
        ],
    }  # fmt: skip
    env = container_env(ctx({"PORT": "80"}), container, {"PATH": "/bin"})
    assert env["PATH"] == "/bin" and env["password"] == "pw"
    assert env["CM_k"] == "overridden" and env["CM_other"] == "o"
    assert (env["NAME"], env["TIER"], env["IP"]) == ("p", "front", "10.0.0.5")
    assert env["LABELS"] == 'app="web"\ntier="front"'
    assert (env["CPU"], env["CPU_M"], env["MEM"]) == ("2", "250", "1024")
    assert env["URL"] == "http://10.0.0.5:80/p"
    assert "GONE" not in env


def test_unset_limit_reads_node_allocatable():
    container = {"name": "c", "env": [
        {"name": "M", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory",
                                                         "divisor": "1Gi"}}}]}  # fmt: skip
    pod = {**POD, "spec": {**POD["spec"], "containers": [{"name": "c", "image": "x"}]}}
    env = container_env(EnvContext(pod, lookup, {"memory": "32Gi"}, {}), container, {})
    assert env["M"] == "32"


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ({"configMapKeyRef": {"name": "nope", "key": "k"}}, "configmap ns/nope not found"),
        ({"configMapKeyRef": {"name": "cm", "key": "nokey"}}, "key 'nokey' not in configmap"),
        ({"secretKeyRef": {"name": "s", "key": "user"}}, "key 'user' not in secret ns/s"),
        ({"fieldRef": {"fieldPath": "spec.bogus"}}, "unsupported fieldRef fieldPath"),
    ],
)
def test_missing_references_fail_clearly(ref, message):
    container = {"name": "c", "env": [{"name": "X", "valueFrom": ref}]}
    with pytest.raises(ConfigError, match=message):
        container_env(ctx(), container, {})


def test_command_and_args_follow_docker_rules():
    env = {"WHO": "world"}
    assert command_line({"name": "c", "command": ["echo", "$(WHO)"]}, env, ("ep",), ("cmd",)) == [
        "echo", "world"]  # fmt: skip
    assert command_line({"name": "c", "args": ["x"]}, env, ("ep",), ("cmd",)) == ["ep", "x"]
    assert command_line({"name": "c"}, env, ("ep",), ("cmd",)) == ["ep", "cmd"]
    with pytest.raises(ConfigError, match="no command"):
        command_line({"name": "c"}, env, (), ())


@pytest.mark.parametrize(
    ("text", "value"),
    [("500m", 0.5), ("2", 2), ("1Ki", 1024), ("1.5Gi", 1.5 * 2**30), ("1e3", 1000), ("3M", 3e6)],
)
def test_quantities(text, value):
    assert float(quantity.parse(text)) == value


def test_bad_quantity_is_rejected():
    with pytest.raises(ValueError, match="quantity"):
        quantity.parse("12 apples")


def test_image_map_of_the_repository():
    images = ImageMap.load(IMAGES_CONFIG)
    assert images.resolve("python:3.11-slim").name == "project"
    operator = images.resolve("ghcr.io/arenastack/operator:0.1.0")
    assert operator.entrypoint == ("python", "-m", "arenastack_operator")
    redis = images.resolve("redis:7.4.0")
    assert (redis.name, redis.entrypoint, redis.volumes) == (
        "system",
        ("redis-server",),
        ("/data",),
    )
    assert images.resolve("docker.io/library/redis:7").volumes == ("/data",)
    with pytest.raises(ImageNotMapped, match="localnode-images.yaml"):
        images.resolve("nginx:1.27")
    env = images.resolve("python:3").environ()
    assert env["PATH"].split(":")[0].endswith(".venv/bin")


def test_runtime_without_its_environment_fails_clearly(tmp_path):
    config = tmp_path / "images.yaml"
    venv = tmp_path / "ray-venv"
    config.write_text(
        f"runtimes: {{ray: {{venv: {venv}}}}}\n"
        "images: [{match: 'rayproject/ray:*', runtime: ray}]\n"
    )
    images = ImageMap.load(config)
    with pytest.raises(RuntimeMissing, match="hack/localnode-runtimes.sh ray"):
        images.resolve("rayproject/ray:2.60.0")
    (venv / "bin").mkdir(parents=True)
    assert images.resolve("rayproject/ray:2.60.0").environ()["VIRTUAL_ENV"] == str(venv)


def test_image_map_rejects_unknown_runtime(tmp_path):
    bad = tmp_path / "images.yaml"
    bad.write_text("runtimes: {}\nimages: [{match: 'x:*', runtime: nope}]\n")
    with pytest.raises(ValueError, match="unknown runtime 'nope'"):
        ImageMap.load(bad)


def test_volumes_are_written_as_files(tmp_path):
    pod = {
        **POD,
        "spec": {
            **POD["spec"],
            "volumes": [
                {"name": "e", "emptyDir": {}},
                {"name": "cm", "configMap": {"name": "cm",
                                             "items": [{"key": "k", "path": "sub/k.txt"}]}},
                {"name": "sec", "secret": {"secretName": "s", "defaultMode": 0o400}},
                {"name": "info", "downwardAPI": {"items": [
                    {"path": "ann", "fieldRef": {"fieldPath": "metadata.annotations['note']"}}]}},
                {"name": "sa", "projected": {"sources": [
                    {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
                    {"configMap": {"name": "cm", "items": [{"key": "other", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [
                        {"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
                ]}},
            ],
        },
    }  # fmt: skip
    issued = []

    def token(ns: str, sa: str, aud: str | None, seconds: int, p: dict) -> tuple[str, float]:
        issued.append((ns, sa, seconds))
        return "tok", 4_000_000_000.0

    def fetch(kind: str, ns: str, name: str) -> dict[str, bytes] | None:
        data = STORE.get((kind, ns, name))
        return None if data is None else {k: v.encode() for k, v in data.items()}

    vols = volumes.materialise(pod, tmp_path, fetch, token, {})
    assert vols.paths["e"].is_dir() and not any(vols.paths["e"].iterdir())
    assert (tmp_path / "cm" / "sub" / "k.txt").read_text() == "v"
    assert (tmp_path / "sec" / "password").read_text() == "pw"
    assert (tmp_path / "sec" / "password").stat().st_mode & 0o777 == 0o400
    assert (tmp_path / "info" / "ann").read_text() == "hi"
    assert [p.name for p in sorted((tmp_path / "sa").iterdir())] == ["ca.crt", "namespace", "token"]
    assert issued == [("ns", "sa", 3600)]


def test_unsupported_volume_is_named(tmp_path):
    pod = {**POD, "spec": {**POD["spec"], "volumes": [{"name": "n", "nfs": {"server": "x"}}]}}
    with pytest.raises(ConfigError, match="volume 'n': unsupported source \\['nfs'\\]"):
        volumes.materialise(pod, tmp_path, lambda *a: None, lambda *a: ("", 0.0), {})


def test_node_addresses_leave_room_for_pods():
    cfg = NodeConfig(state=Path("/x"), kubeconfig=Path("/k"), pod_cidr="10.245.77.0/24")
    assert (cfg.bridge_ip, cfg.uplink_ip, cfg.host_ip) == ("10.245.77.1", "10.245.77.253",
                                                           "10.245.77.254")  # fmt: skip
    assert len(cfg.pod_ips) == 251 and cfg.bridge_ip not in cfg.pod_ips
    assert len(cfg.bridge) <= 15 and len(cfg.host_veth) <= 15
