"""All SQL is parameterized: no value is ever formatted into a statement.

The test reads the source of ``sync/``, ``models/`` and ``migrations/`` and finds every
string that looks like SQL and is built with an f-string, ``%`` or ``.format()``. Each
interpolated expression must be on the allow-list below, which holds only identifiers
and fragments that are constants of our own code (table, column, view and database
names), never data from the API, the user or the environment. Values always travel as
bound parameters (``text("… :name")`` with a dict, or SQLAlchemy Core expressions).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("sync", "models", "migrations")
# Our SQL keywords are upper case (house style), which tells SQL from English messages.
SQL = re.compile(
    r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|GRANT|REVOKE|COMMENT ON|LOCK|"
    r"TRUNCATE|COPY|EXECUTE|FROM|INTO|WHERE|ON CONFLICT)\b"
)

#: (file, interpolated expression) → why it is safe. Every entry is a constant of ours.
ALLOWED: dict[tuple[str, str], str] = {
    ("sync/app/demo.py", "DEMO_DB"): 'the module constant "fintoc_demo", quoted as an identifier',
    ("sync/app/demo.py", "table"): "loops over a literal tuple of our table names",
    (
        "sync/sandbox/invariants.py",
        "cols",
    ): "', '.join(TRACKED): the movement column names, a constant",
    ("sync/store/movements.py", "_STAGE"): "the staging table's name, a constant",
    ("sync/store/movements.py", "_COL_LIST"): "', '.join(_COLS): the movement column names",
    ("sync/store/movements.py", "_STAGE_COLUMNS"): "name type per column of the constant TRACKED",
    ("sync/store/movements.py", "_M_COLS"): "m.col per column of the constant TRACKED",
    ("sync/store/movements.py", "_S_COLS"): "s.col per column of the constant TRACKED",
    ("sync/store/movements.py", "_SET_FROM_STAGE"): "col = s.col per column of TRACKED",
    ("sync/store/movements.py", "_DIFFERS"): "a row comparison of _M_COLS and _S_COLS",
    ("migrations/versions/0003_analyst_views.py", "TODAY"): "a constant SQL expression of now()",
    ("migrations/versions/0003_analyst_views.py", "WINDOW_START"): "a constant expression",
    ("migrations/versions/0003_analyst_views.py", "loads"): "built from the literal LOADS table",
    ("migrations/versions/0003_analyst_views.py", "counts"): "built from literal table names",
    ("migrations/versions/0003_analyst_views.py", "table"): "keys of the literal LOADED_BY",
    ("migrations/versions/0003_analyst_views.py", "view"): "names of the literal view table",
    ("migrations/versions/0003_analyst_views.py", "column"): "column names of the literal table",
    ("migrations/versions/0003_analyst_views.py", "value"): "literal column comments, quoted",
    ("migrations/versions/0003_analyst_views.py", "signature"): "a literal function signature",
    ("migrations/versions/0003_analyst_views.py", "_quote(comment)"): "a literal comment, quoted",
    ("migrations/versions/0003_analyst_views.py", "name"): "names of the literal VIEWS",
    ("migrations/versions/0003_analyst_views.py", "body"): "bodies of the literal VIEWS",
    ("migrations/versions/0003_analyst_views.py", "_quote(view_comment)"): "a literal, quoted",
    ("migrations/env.py", "SCHEMA"): 'models.SCHEMA, the constant "fintoc"',
    ("migrations/versions/0001_initial_schema.py", "name"): "keys of the literal VIEWS dict",
    ("migrations/versions/0001_initial_schema.py", "body"): "values of the literal VIEWS dict",
    ("migrations/versions/0001_initial_schema.py", "VIEW_COMMENTS[name]"): (
        "a literal dict of view comments without quotes"
    ),
    ("migrations/versions/0002_analyst_role.py", "ROLE"): 'the constant "fintoc_analyst"',
    (
        "migrations/versions/0002_analyst_role.py",
        "', '.join((f\"'{t}'\" for t in SECRET_TABLES))",
    ): 'the literal tuple SECRET_TABLES ("link_tokens",), quoted',
}


def _constant_text(node: ast.expr) -> str:
    """The literal parts of an f-string, %-format or .format() template."""
    if isinstance(node, ast.JoinedStr):
        return "".join(str(v.value) for v in node.values if isinstance(v, ast.Constant))
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return ""


def _concatenated(node: ast.expr) -> list[ast.expr]:
    """The operands of a chain of ``+``."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return [*_concatenated(node.left), *_concatenated(node.right)]
    return [node]


def _interpolations(node: ast.AST) -> list[tuple[str, ast.expr]] | None:
    """(template text, interpolated expressions) if node builds a string by formatting."""
    if isinstance(node, ast.JoinedStr):
        exprs = [v.value for v in node.values if isinstance(v, ast.FormattedValue)]
        return [(_constant_text(node), e) for e in exprs] or None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        template = _constant_text(node.left)
        args = node.right.elts if isinstance(node.right, ast.Tuple) else [node.right]
        return [(template, a) for a in args] if template else None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        parts = _concatenated(node)
        template = "".join(_constant_text(p) for p in parts)
        exprs = [p for p in parts if not _constant_text(p) and not isinstance(p, ast.JoinedStr)]
        return [(template, e) for e in exprs] or None
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
        and isinstance(node.func.value, ast.Constant)
        and isinstance(node.func.value.value, str)
    ):
        args = [*node.args, *(k.value for k in node.keywords)]
        return [(node.func.value.value, a) for a in args] or None
    return None


def _formatted_sql() -> list[tuple[str, int, str]]:
    """(file, line, expression) for every expression formatted into SQL-looking text."""
    found = []
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=rel)):
                for template, expr in _interpolations(node) or []:
                    if SQL.search(template):
                        found.append((rel, expr.lineno, ast.unparse(expr)))
    return found


def test_sql_is_never_built_from_values() -> None:
    """Every expression formatted into SQL text is an allow-listed constant identifier."""
    offending = [
        f"{rel}:{line}: {{{expr}}}"
        for rel, line, expr in _formatted_sql()
        if (rel, expr) not in ALLOWED
    ]
    assert not offending, "SQL built by formatting; bind a parameter instead:\n" + "\n".join(
        offending
    )


def test_the_allow_list_has_no_stale_entries() -> None:
    """Each allow-listed interpolation still exists (so the list cannot rot)."""
    present = {(rel, expr) for rel, _, expr in _formatted_sql()}
    assert set(ALLOWED) <= present, set(ALLOWED) - present


def test_the_scanner_catches_an_interpolated_value() -> None:
    """The scanner sees f-strings, %, .format() and + that build SQL."""
    samples = [
        "text(f\"SELECT * FROM fintoc.links WHERE id = '{link_id}'\")",
        'conn.execute("DELETE FROM fintoc.links WHERE id = %s" % link_id)',
        'conn.execute("UPDATE fintoc.links SET status = {}".format(status))',
        'conn.execute("SELECT * FROM fintoc.links WHERE id = \'" + link_id + "\'")',
    ]
    for sample in samples:
        exprs = [
            ast.unparse(e)
            for node in ast.walk(ast.parse(sample))
            for t, e in _interpolations(node) or []
            if SQL.search(t)
        ]
        assert exprs, sample
