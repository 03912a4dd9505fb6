"""``python -m dashboard``: the same as ``siaga-dashboard``."""

import sys

from .cli import main

sys.exit(main())
