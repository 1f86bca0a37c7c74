"""`python -m sync` is the same as `fintoc-sync`."""

import sys

from sync.cli import main

sys.exit(main())
