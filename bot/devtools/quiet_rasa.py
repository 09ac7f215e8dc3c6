"""`python -m bot.devtools.quiet_rasa ARGS` = `rasa ARGS` without third-party DeprecationWarning blocks.

scripts/test.sh runs `rasa data validate` and `rasa test core` through it (see bot/devtools/quiet_warnings.py).
Rasa's CLI also puts a "once" filter for every UserWarning in front when it configures logging, which
brings back pyparsing's deprecation notices (they are UserWarnings too), so the ignore filters go in
front again after it.
"""

from __future__ import annotations

import sys
from typing import Any

from bot.devtools.quiet_warnings import silence


def main() -> None:
    silence()
    import rasa.utils.common as rasa_common
    from rasa.__main__ import main as rasa_main

    configure = rasa_common._filter_warnings

    def filter_warnings(*args: Any, **kwargs: Any) -> None:
        configure(*args, **kwargs)
        silence()

    rasa_common._filter_warnings = filter_warnings
    sys.argv[0] = "rasa"
    rasa_main()


if __name__ == "__main__":
    main()
