"""Pure parts of the local cluster: certificates and node manifests."""

from __future__ import annotations

import ipaddress

from cryptography import x509
from cryptography.x509.oid import NameOID

from arenastack_cluster import nodes
from arenastack_cluster.certs import ensure_pki


def test_pki_identities_and_serving_names(tmp_path):
    ensure_pki(tmp_path)
    serving = x509.load_pem_x509_certificate((tmp_path / "apiserver.crt").read_bytes())
    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "kubernetes.default.svc.cluster.local" in sans.get_values_for_type(x509.DNSName)
    assert ipaddress.ip_address("10.96.0.1") in sans.get_values_for_type(x509.IPAddress)
    admin = x509.load_pem_x509_certificate((tmp_path / "admin.crt").read_bytes())
    orgs = [a.value for a in admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    assert orgs == ["system:masters"]
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.crt").read_bytes())
    assert serving.issuer == ca.subject == admin.issuer
    assert oct((tmp_path / "ca.key").stat().st_mode & 0o777) == "0o600"


def test_pki_is_kept_when_present(tmp_path):
    ensure_pki(tmp_path)
    first = (tmp_path / "ca.crt").read_bytes()
    ensure_pki(tmp_path)
    assert (tmp_path / "ca.crt").read_bytes() == first


def test_gpu_and_cpu_node_manifests():
    gpu = nodes.node_manifest("g", nodes.GPUS_PER_NODE)
    cpu = nodes.node_manifest("c", 0)
    assert gpu["status"]["allocatable"][nodes.GPU_RESOURCE] == str(nodes.GPUS_PER_NODE)
    assert nodes.GPU_RESOURCE not in cpu["status"]["allocatable"]
    assert gpu["metadata"]["labels"]["nvidia.com/gpu.present"] == "true"
    assert "nvidia.com/gpu.present" not in cpu["metadata"]["labels"]
    for node in (gpu, cpu):
        assert node["metadata"]["annotations"][nodes.KWOK_ANNOTATION] == "fake"
