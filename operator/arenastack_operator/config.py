"""Command-line flags and environment variables of `python -m arenastack_operator`.

Every flag has an environment twin (ARENASTACK_<FLAG>, e.g. ARENASTACK_HEALTH_PORT); a flag wins
over its variable, the variable over the default. The Deployment sets POD_NAME and POD_NAMESPACE
through the downward API; they default the election identity and the lease namespace.
"""

from __future__ import annotations

import argparse
import socket
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from arenastack_operator import constants
from arenastack_operator.election import LeaseTiming

T = TypeVar("T")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class ConfigError(ValueError):
    """A flag or variable has a bad value; the message names it."""


@dataclass(frozen=True)
class OperatorConfig:
    namespaces: tuple[str, ...]  # empty: cluster-wide
    kubeconfig: Path | None
    bind_address: str
    health_port: int
    metrics_port: int
    log_level: str
    leader_elect: bool
    lease_name: str
    lease_namespace: str | None  # None only when leader election is off
    identity: str
    timing: LeaseTiming
    shutdown_timeout: float
    raycluster_controller: bool = True  # RayClusters and RayJobs; off where KubeRay runs
    # The image of ArenaEvaluation runs, and the arena service they post to by default.
    evaluation_image: str = constants.DEFAULT_EVALUATION_IMAGE
    arena_url: str | None = None

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces


def _env_name(flag: str) -> str:
    return constants.ENV_PREFIX + flag.upper().replace("-", "_")


def _typed(flag: str, value: str, cast: Callable[[str], T]) -> T:
    try:
        return cast(value)
    except ValueError:
        raise ConfigError(f"--{flag} / {_env_name(flag)}: invalid value {value!r}") from None


def _port(value: str) -> int:
    port = int(value)
    if not 0 <= port <= 65535:
        raise ValueError(value)
    return port


def _positive(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise ValueError(value)
    return number


def _boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(value)


def _log_level(value: str) -> str:
    if value.upper() not in LOG_LEVELS:
        raise ValueError(value)
    return value.upper()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m arenastack_operator",
        description="arenastack operator: reconciles RayCluster, InferenceDeployment and "
        "ArenaEvaluation. Every flag can also be set as ARENASTACK_<FLAG>.",
    )
    p.add_argument(
        "--namespace",
        action="append",
        default=None,
        metavar="NS",
        help="watch only this namespace (repeatable; env: comma-separated list); "
        "default: all namespaces",
    )
    p.add_argument(
        "--kubeconfig",
        help="kubeconfig file; default: in-cluster service account, "
        "then $KUBECONFIG or ~/.kube/config",
    )
    p.add_argument("--bind-address", help=f"default {constants.DEFAULT_BIND_ADDRESS}")
    p.add_argument(
        "--health-port", help=f"/healthz and /readyz; default {constants.DEFAULT_HEALTH_PORT}"
    )
    p.add_argument("--metrics-port", help=f"/metrics; default {constants.DEFAULT_METRICS_PORT}")
    p.add_argument("--log-level", help=f"one of {', '.join(LOG_LEVELS)}; default INFO")
    p.add_argument(
        "--leader-elect",
        help="true/false; default true (off only for local runs with a single replica)",
    )
    p.add_argument("--lease-name", help=f"default {constants.DEFAULT_LEASE_NAME}")
    p.add_argument(
        "--lease-namespace", help="default $POD_NAMESPACE, then the service account's namespace"
    )
    p.add_argument(
        "--identity", help="election identity; default $POD_NAME, then <hostname>_<random>"
    )
    p.add_argument(
        "--lease-duration", help=f"seconds; default {constants.DEFAULT_LEASE_DURATION_S:g}"
    )
    p.add_argument(
        "--renew-deadline", help=f"seconds; default {constants.DEFAULT_RENEW_DEADLINE_S:g}"
    )
    p.add_argument("--retry-period", help=f"seconds; default {constants.DEFAULT_RETRY_PERIOD_S:g}")
    p.add_argument(
        "--shutdown-timeout",
        help="seconds in-flight handlers get to finish on SIGTERM before they are "
        f"cancelled; default {constants.DEFAULT_SHUTDOWN_TIMEOUT_S:g}",
    )
    p.add_argument(
        "--disable-raycluster",
        action="store_true",
        default=None,
        help="do not reconcile ray.io/v1 RayClusters (KubeRay already does)",
    )
    p.add_argument(
        "--evaluation-image",
        help=f"image of ArenaEvaluation runs; default {constants.DEFAULT_EVALUATION_IMAGE}",
    )
    p.add_argument(
        "--arena-url",
        help="arena service that evaluations post verdicts to when their spec names none",
    )
    return p


def _service_account_namespace(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def parse(
    argv: Sequence[str],
    environ: Mapping[str, str],
    *,
    serviceaccount_namespace_file: Path = Path(constants.SERVICEACCOUNT_NAMESPACE_FILE),
) -> OperatorConfig:
    args = _parser().parse_args(list(argv))

    def pick(flag: str, default: str | None) -> str | None:
        value = getattr(args, flag.replace("-", "_"))
        if value is not None:
            return value
        return environ.get(_env_name(flag)) or default

    def typed(flag: str, default: object, cast: Callable[[str], T]) -> T:
        return _typed(flag, pick(flag, str(default)) or "", cast)

    if args.namespace:
        namespaces = tuple(args.namespace)
    else:
        raw = environ.get(_env_name("namespace"), "")
        namespaces = tuple(ns.strip() for ns in raw.split(",") if ns.strip())

    kubeconfig = pick("kubeconfig", None)
    if kubeconfig is not None and not Path(kubeconfig).is_file():
        raise ConfigError(f"--kubeconfig: no such file: {kubeconfig}")

    timing = LeaseTiming(
        lease_duration=typed("lease-duration", constants.DEFAULT_LEASE_DURATION_S, _positive),
        renew_deadline=typed("renew-deadline", constants.DEFAULT_RENEW_DEADLINE_S, _positive),
        retry_period=typed("retry-period", constants.DEFAULT_RETRY_PERIOD_S, _positive),
    )
    try:
        timing.validate()
    except ValueError as e:
        raise ConfigError(f"leader election timing: {e}") from None

    leader_elect = typed("leader-elect", "true", _boolean)
    lease_namespace = (
        pick("lease-namespace", None)
        or environ.get("POD_NAMESPACE")
        or _service_account_namespace(serviceaccount_namespace_file)
    )
    if leader_elect and not lease_namespace:
        raise ConfigError(
            "--lease-namespace / ARENASTACK_LEASE_NAMESPACE is required outside a pod "
            "(or set POD_NAMESPACE, or --leader-elect=false for a single local replica)"
        )

    identity = (
        pick("identity", None)
        or environ.get("POD_NAME")
        or f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"
    )

    health_port = typed("health-port", constants.DEFAULT_HEALTH_PORT, _port)
    metrics_port = typed("metrics-port", constants.DEFAULT_METRICS_PORT, _port)
    if health_port == metrics_port and health_port != 0:
        raise ConfigError(f"--health-port and --metrics-port are both {health_port}")

    arena_url = pick("arena-url", None)
    if arena_url is not None and not arena_url.startswith(("http://", "https://")):
        raise ConfigError(f"--arena-url: not an http(s) URL: {arena_url}")

    return OperatorConfig(
        namespaces=namespaces,
        kubeconfig=Path(kubeconfig) if kubeconfig else None,
        bind_address=pick("bind-address", constants.DEFAULT_BIND_ADDRESS) or "",
        health_port=health_port,
        metrics_port=metrics_port,
        log_level=typed("log-level", "INFO", _log_level),
        leader_elect=leader_elect,
        lease_name=pick("lease-name", constants.DEFAULT_LEASE_NAME) or "",
        lease_namespace=lease_namespace,
        identity=identity,
        timing=timing,
        shutdown_timeout=typed("shutdown-timeout", constants.DEFAULT_SHUTDOWN_TIMEOUT_S, _positive),
        raycluster_controller=not (
            args.disable_raycluster
            or _typed(
                "disable-raycluster",
                environ.get(_env_name("disable-raycluster")) or "false",
                _boolean,
            )
        ),
        evaluation_image=pick("evaluation-image", constants.DEFAULT_EVALUATION_IMAGE) or "",
        arena_url=arena_url.rstrip("/") if arena_url else None,
    )
