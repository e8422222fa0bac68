"""The node's kubelet port: container logs, so `kubectl logs` works through the apiserver.

The apiserver proxies /containerLogs/<ns>/<pod>/<container> to the node's
InternalIP and daemonEndpoints port over TLS. It is started without a kubelet
CA, so it accepts this server's self-signed certificate; requests are not
authenticated (a development node, reachable only on the node's bridge).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from arenastack_cluster.localnode.config import KUBELET_PORT, NodeConfig


def _serving_cert(cfg: NodeConfig) -> tuple[Path, Path]:
    crt, key_path = cfg.state / "kubelet.crt", cfg.state / "kubelet.key"
    if crt.exists() and key_path.exists():
        return crt, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{cfg.name}")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(cfg.host_ip))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    key_path.chmod(0o600)
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return crt, key_path


def find_log(cfg: NodeConfig, ns: str, pod: str, container: str, previous: bool) -> Path | None:
    for state in cfg.pods_dir.glob("*/state.json"):
        try:
            data = json.loads(state.read_text())
        except (OSError, ValueError):
            continue
        if data.get("namespace") != ns or data.get("name") != pod:
            continue
        for rec in data.get("containers", []):
            if rec["name"] == container:
                n = rec["instance"] - (1 if previous else 0)
                path = state.parent / "containers" / container / f"{n}.log"
                return path if n >= 0 and path.exists() else None
    return None


def _handler(cfg: NodeConfig, stopping: threading.Event) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _error(self, code: int, message: str) -> None:
            body = message.encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            parts = url.path.strip("/").split("/")
            if url.path == "/healthz":
                return self._error(200, "ok")
            if len(parts) != 4 or parts[0] != "containerLogs":
                return self._error(
                    404, f"the local node serves only container logs, not {url.path}"
                )
            q = urllib.parse.parse_qs(url.query)
            previous = q.get("previous", ["false"])[0] == "true"
            follow = q.get("follow", ["false"])[0] == "true"
            path = find_log(cfg, parts[1], parts[2], parts[3], previous)
            if path is None:
                return self._error(
                    404, f"no logs for container {parts[3]!r} of pod {parts[1]}/{parts[2]}"
                )
            data = path.read_bytes()
            tail = q.get("tailLines", [None])[0]
            if tail is not None:
                lines = data.splitlines(keepends=True)
                data = b"".join(lines[-int(tail) :]) if int(tail) > 0 else b""
            limit = q.get("limitBytes", [None])[0]
            if limit is not None:
                data = data[: int(limit)]
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            if not follow:
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            offset = path.stat().st_size
            self._chunk(data)
            # Follow until the client goes away or the log file is removed with the pod.
            while not stopping.is_set() and path.exists():
                size = path.stat().st_size
                if size > offset:
                    with path.open("rb") as f:
                        f.seek(offset)
                        chunk = f.read(size - offset)
                    offset = size
                    if not self._chunk(chunk):
                        return
                time.sleep(0.2)
            self._chunk(b"")

        def _chunk(self, data: bytes) -> bool:
            try:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()
                return True
            except OSError:
                return False

    return Handler


def serve(cfg: NodeConfig, stopping: threading.Event) -> ThreadingHTTPServer:
    crt, key = _serving_cert(cfg)
    port = cfg.extra.get("kubelet_port", KUBELET_PORT)
    server = ThreadingHTTPServer((cfg.host_ip, port), _handler(cfg, stopping))
    server.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(crt), str(key))
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True, name="kubelet-server").start()
    return server
