"""Project locations, so every process finds data files the same way."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
KNOWLEDGE_DIR = Path(os.environ.get("KNOWLEDGE_DIR", PROJECT_ROOT / "knowledge"))
VAR_DIR = Path(os.environ.get("VAR_DIR", PROJECT_ROOT / "var"))


def tracker_db_url() -> str:
    """SQLAlchemy URL of the tracker store: env TRACKER_DB_URL, else the SQLite file var/tracker.db."""
    url = os.environ.get("TRACKER_DB_URL", "").strip()
    if url:
        return url
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{VAR_DIR / 'tracker.db'}"
