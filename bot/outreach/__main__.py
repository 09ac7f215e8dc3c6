"""`python -m bot.outreach COMMAND` (see bot/outreach/cli.py)."""

import sys

from bot.outreach.cli import main

sys.exit(main())
