"""``python -m gateway``: the same as ``siaga-gateway``."""

import sys

from .cli import main

sys.exit(main())
