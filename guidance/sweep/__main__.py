"""`python -m guidance.sweep`: see guidance/sweep/cli.py."""
import sys

from .cli import main

sys.exit(main())
