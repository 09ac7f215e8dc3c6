"""Staff review of patient conversations: a small Flask app and a CLI over the tracker store.

    python -m bot.review serve                 web app on http://127.0.0.1:8081/ (REVIEW_PORT)
    python -m bot.review create-user NAME      staff account (password prompted, or REVIEW_NEW_PASSWORD)
    python -m bot.review --help                list / show / export / purge / access-log

The tracker store is only ever read (read-only connections); the retention purge is the one
exception and uses its own writable connection. Settings: bot/config.py (REVIEW_*).
"""


def create_app(*args, **kwargs):
    from bot.review.app import create_app as factory

    return factory(*args, **kwargs)
