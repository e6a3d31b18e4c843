import sys

from guidance.bench.cli import main

sys.exit(main())
