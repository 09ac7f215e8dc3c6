"""Hide third-party DeprecationWarnings again after sanic turns them back on (make test's output).

Why: sanic (imported by Rasa) runs `warnings.filterwarnings("once", category=DeprecationWarning)` when it is
imported. That filter goes first, so it beats PYTHONWARNINGS=ignore and pytest's `filterwarnings`
setting, and every `rasa` command and test run printed blocks of notices from pkg_resources, pyparsing,
click, jax and SQLAlchemy that say nothing about this project. `silence()` imports sanic (so its filter is
in place) and then puts the ignore filters in front of it. Our own code's warnings (UserWarning and
others) still show.
"""

from __future__ import annotations

import warnings

QUIET_CATEGORIES = (DeprecationWarning, PendingDeprecationWarning)


def silence() -> None:
    import sanic  # noqa: F401  (adds its "once" filter now, so the filters below end up in front of it)

    for category in QUIET_CATEGORIES:
        warnings.filterwarnings("ignore", category=category)
