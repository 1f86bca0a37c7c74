"""docs/schema.md from the COMMENTs of the `fintoc` schema: tables, views, columns, functions.

    python -m sync.store.schema_docs [--database-url URL] [--write [PATH]]

The database must be migrated to head. Without --write the Markdown goes to stdout;
a test migrates a fresh database and fails when the committed file differs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.pool import NullPool

from sync.config import normalize_database_url

SCHEMA = "fintoc"
DEFAULT_PATH = Path("docs/schema.md")
KINDS = {"r": "Tables", "v": "Views", "m": "Materialized views"}

_RELATIONS = text(
    """
    SELECT c.oid, c.relname, c.relkind, obj_description(c.oid, 'pg_class') AS comment
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = :schema AND c.relkind IN ('r', 'v', 'm') AND c.relname <> 'alembic_version'
    ORDER BY c.relname
    """
)
_COLUMNS = text(
    """
    SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull,
           coalesce(a.attnum = ANY (i.indkey), false) AS is_key,
           col_description(a.attrelid, a.attnum) AS comment
    FROM pg_attribute a
    LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
    WHERE a.attrelid = :oid AND a.attnum > 0 AND NOT a.attisdropped
    ORDER BY a.attnum
    """
)
_FUNCTIONS = text(
    """
    SELECT p.proname, pg_get_function_arguments(p.oid) AS args,
           pg_get_function_result(p.oid) AS result, obj_description(p.oid, 'pg_proc') AS comment
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = :schema
    ORDER BY p.proname, args
    """
)


@dataclass(frozen=True)
class Column:
    """One column: name, SQL type, whether NOT NULL / part of the primary key, comment."""

    name: str
    type: str
    not_null: bool
    is_key: bool
    comment: str | None


@dataclass(frozen=True)
class Relation:
    """A table or view with its comment and columns."""

    name: str
    kind: str
    comment: str | None
    columns: tuple[Column, ...]


@dataclass(frozen=True)
class Function:
    """A function of the schema: signature, result type, comment."""

    name: str
    args: str
    result: str
    comment: str | None


def read_relations(conn: Connection, schema: str = SCHEMA) -> list[Relation]:
    """Every table and view of the schema (but alembic_version) with its columns."""
    relations = []
    for oid, name, kind, comment in conn.execute(_RELATIONS, {"schema": schema}):
        columns = tuple(Column(*row) for row in conn.execute(_COLUMNS, {"oid": oid}))
        relations.append(Relation(name, kind, comment, columns))
    return relations


def read_functions(conn: Connection, schema: str = SCHEMA) -> list[Function]:
    """Every function of the schema."""
    return [Function(*row) for row in conn.execute(_FUNCTIONS, {"schema": schema})]


def _cell(value: str | None) -> str:
    return (value or "").replace("|", "\\|").replace("\n", " ")


def _relation_md(rel: Relation) -> list[str]:
    lines = [f"### `{rel.name}`", "", _cell(rel.comment) or "_(no comment)_", ""]
    if rel.kind == "r":
        lines += ["| column | type | null | description |", "|---|---|---|---|"]
        for c in rel.columns:
            null = "key" if c.is_key else ("not null" if c.not_null else "null")
            lines.append(f"| `{c.name}` | {c.type} | {null} | {_cell(c.comment)} |")
    else:
        lines += ["| column | type | description |", "|---|---|---|"]
        lines += [f"| `{c.name}` | {c.type} | {_cell(c.comment)} |" for c in rel.columns]
    return [*lines, ""]


def render(relations: Sequence[Relation], functions: Sequence[Function]) -> str:
    """The Markdown document: tables, then views, then functions, each sorted by name."""
    lines = [
        "# The `fintoc` schema",
        "",
        "<!-- Generated from the schema's COMMENTs by `python -m sync.store.schema_docs "
        "--write`; edit the comments in models/ and migrations/, not this file. -->",
        "",
        "Money is integer minor units beside its ISO currency code; `*_major` columns and "
        "`fintoc.to_major` give major units. Timestamps are `timestamptz`; days and months "
        "are UTC. See docs/analyst.md for example queries.",
        "",
    ]
    for kind, title in KINDS.items():
        chosen = [r for r in relations if r.kind == kind]
        if chosen:
            lines += [f"## {title}", ""]
            for rel in chosen:
                lines += _relation_md(rel)
    if functions:
        lines += ["## Functions", "", "| function | returns | description |", "|---|---|---|"]
        lines += [
            f"| `{SCHEMA}.{f.name}({f.args})` | {f.result} | {_cell(f.comment)} |"
            for f in functions
        ]
        lines.append("")
    return "\n".join(lines)


def schema_markdown(url: str) -> str:
    """Read the schema of the database at url and render it."""
    engine = create_engine(normalize_database_url(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return render(read_relations(conn), read_functions(conn))
    finally:
        engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    """Print the Markdown, or write it with --write; exit 2 without a database URL."""
    parser = argparse.ArgumentParser(
        prog="python -m sync.store.schema_docs", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument(
        "--write", nargs="?", const=DEFAULT_PATH, type=Path, metavar="PATH", help="write the file"
    )
    args = parser.parse_args(argv)
    if not args.database_url:
        print("schema_docs: set DATABASE_URL or pass --database-url", file=sys.stderr)
        return 2
    markdown = schema_markdown(args.database_url)
    if args.write is None:
        sys.stdout.write(markdown)
    else:
        args.write.write_text(markdown, encoding="utf-8")
        print(f"wrote {args.write}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
