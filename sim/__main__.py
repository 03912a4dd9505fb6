"""``python -m sim``: the same as ``siaga-sim``."""

import sys

from .cli import main

sys.exit(main())
