"""A local, Fintoc-compatible HTTP API with deterministic, evolving data and faults.

    from sync.sandbox import Sandbox, SANDBOX_SECRET_KEY
    with Sandbox(seed=42) as sb:
        ...  # point any Fintoc client at sb.url with sb.secret_key

Written from the API contract (``fintoc-api.md``), never from our client's code, so
that a bug shared by both cannot pass the tests.
"""

from sync.sandbox.app import Sandbox, serve_forever
from sync.sandbox.faults import KINDS as FAULT_KINDS
from sync.sandbox.faults import FaultRule, Faults
from sync.sandbox.server import SANDBOX_SECRET_KEY
from sync.sandbox.world import World

__all__ = [
    "FAULT_KINDS",
    "SANDBOX_SECRET_KEY",
    "FaultRule",
    "Faults",
    "Sandbox",
    "World",
    "serve_forever",
]
