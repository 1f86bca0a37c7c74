"""`python -m sync` is the same as `fintoc-sync`."""

import sys

from sync.app.cli import entry

sys.exit(entry())
