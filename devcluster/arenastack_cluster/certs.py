"""Certificates and keys for the local control plane.

One CA signs the apiserver's serving certificate and every client certificate;
a separate RSA key pair signs service-account tokens (so the TokenRequest API
works and in-cluster clients authenticate with their own RBAC).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=365)
# The in-cluster names pods use for the apiserver; the first address of the
# service range is the `kubernetes` Service's ClusterIP.
APISERVER_DNS_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


@dataclass(frozen=True)
class ClientIdentity:
    """A user (CN) and its groups (O) as the apiserver's x509 authenticator reads them."""

    file_stem: str
    user: str
    groups: tuple[str, ...] = ()


CLIENTS = (
    ClientIdentity("admin", "arenastack-admin", ("system:masters",)),
    ClientIdentity("controller-manager", "system:kube-controller-manager"),
    ClientIdentity("scheduler", "system:kube-scheduler"),
    # kwok acts for every simulated node; admin rights keep its config simple
    # and it is a development component only.
    ClientIdentity("kwok", "kwok-controller", ("system:masters",)),
)


def _write_key(path: Path, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _name(common_name: str, orgs: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    attrs += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    return x509.Name(attrs)


def _sign(
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    ca_cert: x509.Certificate | None,
    ca_key: ec.EllipticCurvePrivateKey,
    *,
    is_ca: bool = False,
    usage: ExtendedKeyUsageOID | None = None,
    sans: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject if ca_cert else subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def _load_ca(pki: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return cert, key


def _issue(
    pki: Path,
    stem: str,
    subject: x509.Name,
    usage: ExtendedKeyUsageOID,
    sans: list[x509.GeneralName] | None = None,
) -> None:
    ca_cert, ca_key = _load_ca(pki)
    key = ec.generate_private_key(ec.SECP256R1())
    _write_key(pki / f"{stem}.key", key)
    _write_cert(
        pki / f"{stem}.crt",
        _sign(subject, key.public_key(), ca_cert, ca_key, usage=usage, sans=sans),
    )


def ensure_node_pki(pki: Path, node: str, node_ip: str) -> None:
    """A real kubelet's identities, made once per node address: its client certificate as
    the node authorizer and NodeRestriction expect it (system:node:<name> in system:nodes),
    its serving certificate, and the apiserver's client certificate for logs, exec and
    port-forward."""
    serving = pki / "kubelet-serving.crt"
    if serving.exists():
        cert = x509.load_pem_x509_certificate(serving.read_bytes())
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        if ipaddress.ip_address(node_ip) in sans.get_values_for_type(x509.IPAddress):
            return
    _issue(
        pki,
        "node",
        _name(f"system:node:{node}", ("system:nodes",)),
        ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    _issue(
        pki,
        "kubelet-serving",
        _name(f"system:node:{node}", ("system:nodes",)),
        ExtendedKeyUsageOID.SERVER_AUTH,
        [x509.DNSName(node), x509.IPAddress(ipaddress.ip_address(node_ip))],
    )
    _issue(
        pki,
        "apiserver-kubelet-client",
        _name("kube-apiserver-kubelet-client", ("system:masters",)),
        ExtendedKeyUsageOID.CLIENT_AUTH,
    )


def ensure_pki(pki: Path, extra_ips: tuple[str, ...] = ()) -> None:
    """Create the CA, serving and client certificates unless they exist."""
    pki.mkdir(parents=True, exist_ok=True)
    if (pki / "ca.crt").exists() and (pki / "sa.key").exists():
        return
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _sign(_name("arenastack-local-ca"), ca_key.public_key(), None, ca_key, is_ca=True)
    _write_key(pki / "ca.key", ca_key)
    _write_cert(pki / "ca.crt", ca_cert)

    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in APISERVER_DNS_NAMES]
    for ip in ("127.0.0.1", "10.96.0.1", *extra_ips):
        sans.append(x509.IPAddress(ipaddress.ip_address(ip)))
    serving_key = ec.generate_private_key(ec.SECP256R1())
    serving = _sign(
        _name("kube-apiserver"),
        serving_key.public_key(),
        ca_cert,
        ca_key,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        sans=sans,
    )
    _write_key(pki / "apiserver.key", serving_key)
    _write_cert(pki / "apiserver.crt", serving)

    for client in CLIENTS:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _sign(
            _name(client.user, client.groups),
            key.public_key(),
            ca_cert,
            ca_key,
            usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        )
        _write_key(pki / f"{client.file_stem}.key", key)
        _write_cert(pki / f"{client.file_stem}.crt", cert)

    # Service-account tokens are signed with RSA: every client library verifies it.
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(pki / "sa.key", sa_key)
    (pki / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
