"""`python -m guidance.sweep`: see guidance/sweep/cli.py."""

import sys

from guidance.sweep.cli import main

sys.exit(main())
