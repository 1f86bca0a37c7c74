"""docker-compose.yml, Dockerfile, .env.example and .dockerignore (no Docker engine here)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from cryptography.fernet import Fernet

from tests.app.conftest import REPO

SECRET_NAMES = re.compile(r"PASSWORD|SECRET|KEY|TOKEN|DATABASE_URL", re.IGNORECASE)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """docker-compose.yml as parsed by PyYAML."""
    doc = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert isinstance(doc, dict)
    return doc


def test_compose_has_postgres_migrate_and_daemon(compose: dict[str, Any]) -> None:
    """The three services exist; migrate and daemon run our image's commands."""
    services = compose["services"]
    assert {"postgres", "migrate", "daemon"} <= set(services)
    assert services["migrate"]["command"][0] == "migrate"
    assert services["daemon"]["command"][0] == "daemon"
    assert "--metrics-port" in services["daemon"]["command"]
    assert services["daemon"]["environment"]["FINTOC_SYNC_METRICS_HOST"] == "0.0.0.0"  # noqa: S104


def test_postgres_has_a_pg_isready_healthcheck(compose: dict[str, Any]) -> None:
    """Postgres reports healthy only when pg_isready says so."""
    check = compose["services"]["postgres"]["healthcheck"]
    assert "pg_isready" in " ".join(check["test"])
    assert check["retries"] >= 1


def test_startup_order_waits_for_health_and_migration(compose: dict[str, Any]) -> None:
    """migrate waits for a healthy Postgres; the daemon also for migrate to finish."""
    services = compose["services"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    daemon = services["daemon"]["depends_on"]
    assert daemon["postgres"]["condition"] == "service_healthy"
    assert daemon["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["restart"] == "no"


def test_secrets_come_from_the_env_file_only(compose: dict[str, Any]) -> None:
    """Our services read .env; no secret-named variable has a literal value in the file."""
    for name in ("migrate", "daemon"):
        assert compose["services"][name]["env_file"] == ".env"
    secret_vars = [
        (key, value)
        for service in compose["services"].values()
        for key, value in (service.get("environment") or {}).items()
        if SECRET_NAMES.search(key)
    ]
    assert secret_vars, "compose should pass at least one secret-named variable through"
    for key, value in secret_vars:
        assert str(value).startswith("${"), f"{key} is inline"


def test_dockerfile_runs_fintoc_sync_as_non_root() -> None:
    """python:3.11-slim, pip install of the project, a non-root user, fintoc-sync entrypoint."""
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.MULTILINE)
    assert "pip install /src" in text
    users = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    assert users and users[-1] not in {"root", "0"}
    assert 'ENTRYPOINT ["fintoc-sync"]' in text


def test_env_example_holds_placeholders_only() -> None:
    """.env.example names every variable but holds no real-looking key."""
    values = dict(
        line.split("=", 1)
        for line in (REPO / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert {"DATABASE_URL", "FINTOC_SECRET_KEY", "FINTOC_SYNC_ENCRYPTION_KEY"} <= set(values)
    assert not re.search(r"sk_(test|live)_[A-Za-z0-9]{6,}", values["FINTOC_SECRET_KEY"])
    with pytest.raises(ValueError):
        Fernet(values["FINTOC_SYNC_ENCRYPTION_KEY"])
    secrets = [v for k, v in values.items() if SECRET_NAMES.search(k)]
    assert secrets and all("replace" in v for v in secrets)


def test_dockerignore_keeps_secrets_and_venv_out() -> None:
    """The build context never includes .env or the virtualenv."""
    lines = (REPO / ".dockerignore").read_text().splitlines()
    assert {".env", ".venv", ".git"} <= set(lines)
