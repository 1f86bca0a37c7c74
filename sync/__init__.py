"""fintoc-sync: keep a Postgres database in step with a Fintoc organization."""

__version__ = "0.1.0"
