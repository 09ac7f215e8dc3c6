"""`python -m bot.alerts worker`: see bot/alerts/worker.py."""

import sys

from bot.alerts.worker import main

sys.exit(main())
