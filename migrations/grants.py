"""Re-apply the analyst grants; later migrations that add tables call this."""

from importlib import import_module

from alembic import op


def grant_analyst_read() -> None:
    """Grant SELECT on every non-secret table/view of the schema to fintoc_analyst."""
    module = import_module("migrations.versions.0002_analyst_role")
    op.execute(module.GRANT)
