"""The Postgres side: engine, migrations, loaders (never commit), movement writer, vault."""
