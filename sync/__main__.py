"""`python -m sync` is the same as `fintoc-sync`."""

import sys

from sync.app.launch import run

sys.exit(run())
