"""The Postgres side: engine and sessions, migrations, loaders, schema documentation."""
