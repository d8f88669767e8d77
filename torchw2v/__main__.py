"""``python -m torchw2v``: the ``torchw2v`` command (see :mod:`torchw2v.cli`)."""

import sys

from .cli import main

sys.exit(main())
