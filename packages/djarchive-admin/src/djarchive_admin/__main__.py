"""``python -m djarchive_admin``: the ``djarchive-admin`` command line."""

import sys

from .cli import main

sys.exit(main())
