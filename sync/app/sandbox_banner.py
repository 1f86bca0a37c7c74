"""What `fintoc-sync sandbox` prints: ready-to-paste lines, not just raw values.

`python -m sync.sandbox` keeps the raw form (URL, key, one token a line) that scripts
and tests parse; the served command speaks to a person in another terminal.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TextIO

from sync.sandbox import Sandbox


def tokens_file(port: int) -> Path:
    """Where the sandbox's link tokens are written for `links add --from-file`."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"fintoc-sandbox-{port}-tokens.txt"


def announce(sandbox: Sandbox, out: TextIO, *, real_time: bool = True) -> None:
    """Print the URL, the export lines, the tokens file and the next commands."""
    tokens = sandbox.link_tokens()
    port = int(sandbox.url.rsplit(":", 1)[1])
    path = tokens_file(port)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:  # sandbox tokens are published test values, still 600
        fh.write("".join(f"{token}\n" for token in tokens))
    clock = (
        f"following the wall clock (now {sandbox.world.now:%Y-%m-%d %H:%M} UTC)"
        if real_time
        else f"fixed clock at {sandbox.world.now:%Y-%m-%d %H:%M} UTC (POST /_sandbox/advance)"
    )
    out.write(
        f"fintoc-sync sandbox serving {sandbox.url} — {len(tokens)} links, {clock}\n"
        "\n# in another terminal, paste:\n"
        f"export FINTOC_API_URL={sandbox.url}\n"
        f"export FINTOC_SECRET_KEY={sandbox.secret_key}\n"
        "# and, once (keep it: the stored tokens need it):\n"
        'export FINTOC_SYNC_ENCRYPTION_KEY=$(python -c "from cryptography.fernet import '
        'Fernet; print(Fernet.generate_key().decode())")\n'
        "\nfintoc-sync migrate\n"
        f"fintoc-sync links add --from-file {path}\n"
        "fintoc-sync sync\n"
        "\n# Ctrl-C stops the sandbox.\n"
    )
