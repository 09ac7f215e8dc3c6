"""Project locations, so every process finds data files the same way."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
KNOWLEDGE_DIR = Path(os.environ.get("KNOWLEDGE_DIR", PROJECT_ROOT / "knowledge"))
VAR_DIR = Path(os.environ.get("VAR_DIR", PROJECT_ROOT / "var"))


def database_url(env_name: str, default_file: str) -> str:
    """SQLAlchemy URL from env `env_name`, else a SQLite file in var/ (created on first use)."""
    url = os.environ.get(env_name, "").strip()
    if url:
        return url
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{VAR_DIR / default_file}"


def tracker_db_url() -> str:
    """SQLAlchemy URL of the tracker store: env TRACKER_DB_URL, else the SQLite file var/tracker.db."""
    return database_url("TRACKER_DB_URL", "tracker.db")
