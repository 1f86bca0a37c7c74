"""Transport security: TLS is always verified; plain http only to loopback or --insecure."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sync.api.client import FintocClient
from sync.config import Settings, is_loopback_url
from sync.errors import ConfigError, TransportError
from tests.helpers import run_cli

KEY = "sk_test_transport_0123456789abcdef"


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by itself (no CA anyone trusts)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _Recorder(BaseHTTPRequestHandler):
    """Answers `[]` and remembers the Authorization header of every request it got."""

    seen: list[str]

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Authorization", ""))
        body = b"[]"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """An HTTPS server on 127.0.0.1 with a self-signed certificate; (url, headers seen)."""
    cert, key = _self_signed(tmp_path)
    seen: list[str] = []
    handler = type("Handler", (_Recorder,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_client_refuses_a_certificate_nobody_vouches_for(tls_server: tuple[str, list[str]]) -> None:
    """An https URL to a self-signed server fails with a TLS error; the key is never sent."""
    url, seen = tls_server
    # the server itself works: only verification stands in the way
    assert httpx.get(url + "/v1/links", verify=False).json() == []  # noqa: S501 - the control
    seen.clear()
    client = FintocClient(url, KEY, sleep=lambda _: None)
    with pytest.raises(TransportError) as caught:
        list(client.iter_links())
    client.close()
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    assert seen == []


def test_sync_against_a_self_signed_server_fails_clearly(
    tls_server: tuple[str, list[str]], db_url: str, tmp_path: Path
) -> None:
    """`sync` to an https API with a bad certificate fails (exit 1) naming the TLS error."""
    url, seen = tls_server
    result = run_cli("sync", env=_env(db_url, tmp_path, url))
    assert result.returncode == 1
    assert "CERTIFICATE_VERIFY_FAILED" in result.stdout + result.stderr
    assert KEY not in result.stdout + result.stderr
    assert seen == []


def _env(db_url: str, tmp_path: Path, api_url: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("FINTOC", "DATABASE"))}
    return base | {
        "DATABASE_URL": db_url,
        "FINTOC_API_URL": api_url,
        "FINTOC_SECRET_KEY": KEY,
        "FINTOC_SYNC_DATA_DIR": str(tmp_path / "unused-embedded"),
        "FINTOC_SYNC_MAX_ATTEMPTS": "1",
    }


@pytest.mark.parametrize(
    "command",
    [["sync"], ["backfill", "--since", "2026-01-01"], ["daemon", "--every", "1h"]],
)
def test_plain_http_to_a_remote_host_is_refused(
    command: list[str], db_url: str, tmp_path: Path
) -> None:
    """http://api.fintoc.com exits 2 with one line saying why, for every command that calls it."""
    env = _env(db_url, tmp_path, "http://api.fintoc.com")
    env["FINTOC_SYNC_ENCRYPTION_KEY"] = "x" * 43 + "="
    result = run_cli(*command, env=env)
    assert result.returncode == 2
    assert "plain http://" in result.stderr and "--insecure" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("how", ["flag", "env"])
def test_insecure_allows_plain_http_then_fails_only_to_connect(
    how: str, db_url: str, tmp_path: Path
) -> None:
    """With --insecure (or FINTOC_SYNC_INSECURE=1) http:// is not a config error; it just fails."""
    env = _env(db_url, tmp_path, "http://api.fintoc.com")
    args = ["sync"]
    if how == "flag":
        args.append("--insecure")
    else:
        env["FINTOC_SYNC_INSECURE"] = "1"
    result = run_cli(*args, env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "plain http://" not in output
    assert "ConnectError" in output


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8765", "http://localhost:8765", "http://[::1]:8765", "http://127.1.2.3"],
)
def test_loopback_http_is_allowed(url: str) -> None:
    """Plain http to a loopback address (the sandbox) needs no --insecure."""
    assert is_loopback_url(url)
    assert Settings(api_url=url).checked_api_url() == url


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1.example.com",
        "http://127.evil.test:8765",
        "http://localhost.example.com",
        "http://10.0.0.1",
        "http://[::ffff:8.8.8.8]",
    ],
)
def test_names_that_only_look_local_are_refused(url: str) -> None:
    """A host name that starts with 127. or localhost is resolved by DNS: not loopback."""
    assert not is_loopback_url(url)
    with pytest.raises(ConfigError, match="plain http://"):
        Settings(api_url=url).checked_api_url()


def test_other_schemes_are_refused() -> None:
    """ftp://, file:// and schemeless URLs are configuration errors."""
    for url in ("ftp://api.fintoc.com", "file:///etc/passwd", "api.fintoc.com"):
        with pytest.raises(ConfigError):
            Settings(api_url=url).checked_api_url()
