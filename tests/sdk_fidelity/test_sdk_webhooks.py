"""The official SDK's ``fintoc.webhook.WebhookSignature`` accepts the sandbox's deliveries.

Run with ``scripts/sdk_fidelity.sh``. The sandbox (project venv, a subprocess) delivers a
real ``link.created`` to a capture server here; the SDK verifies the raw body and header.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

webhook = pytest.importorskip("fintoc.webhook")
errors = pytest.importorskip("fintoc.errors")

ROOT = Path(__file__).resolve().parents[2]
SECRET = "whsec_sdk_fidelity_secret"
SANDBOX = """
import sys
from sync.sandbox import Sandbox
with Sandbox(seed=7, webhook_url=sys.argv[1], webhook_secret=sys.argv[2]) as sb:
    sb.create_link()
    assert sb.webhooks.wait_idle(20)
"""


def _capture() -> tuple[HTTPServer, list[tuple[bytes, str]]]:
    seen: list[tuple[bytes, str]] = []

    class Capture(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((body, self.headers["Fintoc-Signature"]))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    server = HTTPServer(("127.0.0.1", 0), Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, seen


def test_sdk_verifies_the_sandbox_signature_and_refuses_a_tampered_body() -> None:
    """WebhookSignature.verify_header passes a sandbox delivery; one changed byte fails."""
    server, seen = _capture()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    python = os.environ.get("SANDBOX_PYTHON", sys.executable)
    subprocess.run([python, "-c", SANDBOX, url, SECRET], cwd=ROOT, check=True, timeout=60)
    server.shutdown()
    assert len(seen) == 1
    body, header = seen[0]
    webhook.WebhookSignature.verify_header(body.decode(), header, SECRET)
    with pytest.raises(errors.WebhookSignatureError):
        webhook.WebhookSignature.verify_header(body.decode() + " ", header, SECRET)
    with pytest.raises(errors.WebhookSignatureError):
        webhook.WebhookSignature.verify_header(body.decode(), header, "whsec_other")
