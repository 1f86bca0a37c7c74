"""The process entry point of `fintoc-sync` and `python -m sync`.

The CLI's imports (SQLAlchemy, httpx, psycopg, our models) create some hundred thousand
objects that live as long as the process. They are imported with the cyclic GC off (its
collections during the import only walk objects that all survive: ~50 ms of every
command's start-up), then frozen out of it, so the full collections of a long backfill
skip them too.
"""

from __future__ import annotations

import gc


def run() -> int:
    """Import the CLI with the GC off, freeze what was imported, run the command."""
    gc.disable()
    try:
        from sync.app.cli import main
    finally:
        gc.freeze()
        gc.enable()
    return main()
