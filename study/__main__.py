"""`python -m study` is the `vidcolor` command."""

import sys

from study.cli import main

sys.exit(main())
