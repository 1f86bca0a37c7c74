"""Tests of the Postgres side: analyst views, schema docs."""
