import sys

from bot.review.cli import main

sys.exit(main())
