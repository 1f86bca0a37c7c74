"""Typed settings, built once at the edge (CLI / scheduler) and passed down.

Nothing here opens a connection or a socket: the values are read from the
environment (or an explicit mapping, for tests) and validated.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sync.errors import ConfigError

DEFAULT_API_URL = "https://api.fintoc.com"
# The dated API version we pin (fintoc-api.md §1.3): response shapes must not
# change under us when the organization's default version is upgraded.
DEFAULT_API_VERSION = "2023-11-15"


def default_data_dir(env: Mapping[str, str]) -> Path:
    """Where the embedded Postgres keeps its data when DATABASE_URL is unset."""
    if env.get("FINTOC_SYNC_DATA_DIR"):
        return Path(env["FINTOC_SYNC_DATA_DIR"]).expanduser()
    home = env.get("HOME") or str(Path.home())
    base = env.get("XDG_DATA_HOME") or str(Path(home) / ".local" / "share")
    return Path(base) / "fintoc-sync" / "pgdata"


def normalize_database_url(url: str) -> str:
    """Accept libpq-style URLs and make SQLAlchemy use psycopg 3."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if url.startswith("postgresql+"):
        raise ConfigError(
            "DATABASE_URL uses a driver other than psycopg 3; "
            "write it as postgresql://… or postgresql+psycopg://…"
        )
    raise ConfigError("DATABASE_URL must start with postgresql:// (or postgresql+psycopg://)")


def is_loopback_url(url: str) -> bool:
    """True when the URL points at this machine (plain http is allowed there).

    Only ``localhost`` and literal loopback addresses count: a name such as
    ``127.0.0.1.example.com`` is resolved by DNS and may point anywhere.
    """
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be greater than zero, got {raw!r}")
    return value


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    value = _float(env, name, default)
    if value != int(value):
        raise ConfigError(f"{name} must be a whole number, got {env.get(name)!r}")
    return int(value)


def _port(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or not 0 <= int(raw) <= 65535:
        raise ConfigError(f"{name} must be a TCP port (0-65535), got {raw!r}")
    return int(raw)


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to know, from the environment or flags."""

    database_url: str | None = None
    secret_key: str | None = field(default=None, repr=False)
    api_url: str = DEFAULT_API_URL
    api_version: str | None = DEFAULT_API_VERSION
    encryption_key: str | None = field(default=None, repr=False)
    data_dir: Path = field(default_factory=lambda: default_data_dir(os.environ))
    # Fintoc documents 100 requests/s per organization (fintoc-api.md §5.4); we start
    # there and the limiter halves on every 429 and climbs back (docs/decisions/0007).
    requests_per_second: float = 100.0
    # Enough requests in flight to use the budget when each takes ~50 ms (8 × 20/s).
    concurrency: int = 8
    http_timeout: float = 30.0
    max_response_bytes: int = 64 * 1024 * 1024
    max_attempts: int = 6
    backoff_cap: float = 30.0
    retry_after_cap: float = 120.0
    db_wait: float = 60.0
    movements_lookback_days: int = 7
    movements_initial_days: int = 30
    # Re-read an account Fintoc has not refreshed at least this often (seconds).
    full_read_every: float = 3600.0
    insecure: bool = False
    metrics_host: str = "127.0.0.1"
    # None: three schedule intervals, at least an hour (sync.app.daemon.health_max_age)
    health_max_age: float | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    webhook_port: int | None = None
    webhook_host: str = "127.0.0.1"
    webhook_workers: int = 2

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the contract's variables (PRODUCT.md) plus our tuning knobs."""
        env = os.environ if env is None else env
        api_version = env.get("FINTOC_API_VERSION", DEFAULT_API_VERSION) or None
        return cls(
            database_url=env.get("DATABASE_URL") or None,
            secret_key=env.get("FINTOC_SECRET_KEY") or None,
            api_url=(env.get("FINTOC_API_URL") or DEFAULT_API_URL).rstrip("/"),
            api_version=api_version,
            encryption_key=env.get("FINTOC_SYNC_ENCRYPTION_KEY") or None,
            data_dir=default_data_dir(env),
            requests_per_second=_float(
                env, "FINTOC_SYNC_REQUESTS_PER_SECOND", _D["requests_per_second"]
            ),
            concurrency=_int(env, "FINTOC_SYNC_CONCURRENCY", _D["concurrency"]),
            http_timeout=_float(env, "FINTOC_SYNC_HTTP_TIMEOUT", _D["http_timeout"]),
            max_response_bytes=_int(
                env, "FINTOC_SYNC_MAX_RESPONSE_BYTES", _D["max_response_bytes"]
            ),
            max_attempts=_int(env, "FINTOC_SYNC_MAX_ATTEMPTS", _D["max_attempts"]),
            backoff_cap=_float(env, "FINTOC_SYNC_BACKOFF_CAP", _D["backoff_cap"]),
            retry_after_cap=_float(env, "FINTOC_SYNC_RETRY_AFTER_CAP", _D["retry_after_cap"]),
            db_wait=_float(env, "FINTOC_SYNC_DB_WAIT", _D["db_wait"]),
            movements_lookback_days=_int(
                env, "FINTOC_SYNC_LOOKBACK_DAYS", _D["movements_lookback_days"]
            ),
            movements_initial_days=_int(
                env, "FINTOC_SYNC_INITIAL_DAYS", _D["movements_initial_days"]
            ),
            full_read_every=_float(env, "FINTOC_SYNC_FULL_READ_EVERY", _D["full_read_every"]),
            insecure=env.get("FINTOC_SYNC_INSECURE", "") in {"1", "true", "yes"},
            metrics_host=env.get("FINTOC_SYNC_METRICS_HOST") or _D["metrics_host"],
            health_max_age=(
                _float(env, "FINTOC_SYNC_HEALTH_MAX_AGE", 0.0)
                if env.get("FINTOC_SYNC_HEALTH_MAX_AGE")
                else None
            ),
            webhook_secret=env.get("FINTOC_WEBHOOK_SECRET") or None,
            webhook_port=_port(env, "FINTOC_SYNC_WEBHOOK_PORT"),
            webhook_host=env.get("FINTOC_SYNC_WEBHOOK_HOST") or _D["webhook_host"],
            webhook_workers=_int(env, "FINTOC_SYNC_WEBHOOK_WORKERS", _D["webhook_workers"]),
        )

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with CLI flags applied (None means: keep the environment's value)."""
        kept = {k: v for k, v in changes.items() if v is not None}
        return replace(self, **kept)  # type: ignore[arg-type]

    def require_secret_key(self) -> str:
        """The API secret key, or a ConfigError that says how to set it."""
        if not self.secret_key:
            raise ConfigError(
                "FINTOC_SECRET_KEY is not set; export your sk_test_… or sk_live_… key "
                "(or run `fintoc-sync demo`, which needs none)"
            )
        return self.secret_key

    def require_encryption_key(self) -> str:
        """The Fernet key for link tokens, or a ConfigError that says how to make one."""
        if not self.encryption_key:
            raise ConfigError(
                "FINTOC_SYNC_ENCRYPTION_KEY is not set; it encrypts link tokens at rest. "
                'Make one with: python -c "from cryptography.fernet import Fernet; '
                'print(Fernet.generate_key().decode())"'
            )
        return self.encryption_key

    def require_webhook_secret(self) -> str:
        """The webhook signing secret, or a ConfigError (the receiver must not run unsigned)."""
        if not self.webhook_secret:
            raise ConfigError(
                "FINTOC_WEBHOOK_SECRET is not set; the webhook receiver refuses to start "
                "without the endpoint's signing secret (whsec_…, from Fintoc's dashboard)"
            )
        return self.webhook_secret

    def checked_api_url(self) -> str:
        """The API base URL, refusing plain http to anything but loopback."""
        url = self.api_url
        scheme = urlsplit(url).scheme
        if scheme not in {"http", "https"}:
            raise ConfigError(f"FINTOC_API_URL must be an http(s) URL, got {url!r}")
        if scheme == "http" and not is_loopback_url(url) and not self.insecure:
            raise ConfigError(
                "FINTOC_API_URL uses plain http:// to a non-loopback host; the secret key "
                "would travel unencrypted. Use https://, or pass --insecure if you must."
            )
        return url


#: The one statement of each default: the dataclass fields above.
_D: dict[str, Any] = {
    f.name: f.default for f in Settings.__dataclass_fields__.values() if f.default is not MISSING
}
