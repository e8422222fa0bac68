"""Kubernetes credentials, loaded once the same way for kopf and for the election's client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kopf
from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException


def load_configuration(kubeconfig: Path | None) -> client.Configuration:
    """An explicit kubeconfig wins; otherwise in-cluster, then $KUBECONFIG or ~/.kube/config."""
    configuration = client.Configuration()
    if kubeconfig is not None:
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
        return configuration
    try:
        config.load_incluster_config(client_configuration=configuration)
    except ConfigException:
        config.load_kube_config(client_configuration=configuration)
    return configuration


def connection_info(configuration: client.Configuration) -> kopf.ConnectionInfo:
    # Since kubernetes 36.0.1 the bearer token lives under "BearerToken"; reading it through
    # get_api_key_with_prefix also runs the in-cluster token refresh hook.
    header = configuration.get_api_key_with_prefix(
        "BearerToken"
    ) or configuration.get_api_key_with_prefix("authorization")
    scheme, _, token = (header or "").partition(" ")
    if header and not token:
        scheme, token = "", header
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        username=configuration.username or None,
        password=configuration.password or None,
        scheme=scheme or None,
        token=token or None,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
    )


def register_login(registry: kopf.OperatorRegistry, kubeconfig: Path | None) -> None:
    """kopf re-runs login on 401s, so the credentials are re-read (rotated tokens) every time."""

    # async (the file reads are tiny): a sync handler would run in a worker thread, which kopf
    # cannot cancel if the operator is stopped during its first login.
    @kopf.on.login(registry=registry)
    async def login(**_: Any) -> kopf.ConnectionInfo:
        return connection_info(load_configuration(kubeconfig))
