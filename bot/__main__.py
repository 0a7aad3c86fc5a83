"""``python -m bot``: the same as the ``cohortbot`` command."""

import sys

from bot.cli import main

sys.exit(main())
