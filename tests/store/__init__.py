"""Tests of the Postgres side: migrations, the vault, analyst views, schema docs."""
