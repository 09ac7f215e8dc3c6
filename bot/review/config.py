"""Settings of the staff review app, all from environment variables.

| variable | default | what |
| --- | --- | --- |
| TRACKER_DB_URL | sqlite:///<project>/var/tracker.db | conversations (read through `bot.paths.tracker_db_url`) |
| REVIEW_DB_URL | sqlite:///<project>/var/review.db | staff accounts, login failures, access log |
| REVIEW_PORT / REVIEW_HOST | 8081 / 127.0.0.1 | where `python -m bot.review serve` listens |
| REVIEW_SECRET_KEY | generated into var/review_secret (0600) | signs session cookies and CSRF tokens |
| REVIEW_COOKIE_SECURE | 1 | 1: cookies only over HTTPS (set 0 for plain-HTTP local use) |
| REVIEW_TIMEZONE | the server's local zone | IANA zone used to show times and group by day |
| REVIEW_TRUST_PROXY | 0 | 1: take the client address from one reverse proxy's X-Forwarded-For |
"""

from __future__ import annotations

import os
import secrets
from datetime import tzinfo
from pathlib import Path

from bot.paths import VAR_DIR, database_url, tracker_db_url  # noqa: F401  (tracker_db_url re-exported)

DEFAULT_PORT = 8081


def review_db_url() -> str:
    return database_url("REVIEW_DB_URL", "review.db")


def review_port() -> int:
    try:
        return int(os.environ.get("REVIEW_PORT", DEFAULT_PORT))
    except ValueError:
        return DEFAULT_PORT


def env_flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    return raw in {"1", "true", "yes", "on"}


def secret_key(path: Path | None = None) -> str:
    """REVIEW_SECRET_KEY, or a random key kept in var/review_secret (created with 0600 permissions)."""
    key = os.environ.get("REVIEW_SECRET_KEY", "").strip()
    if key:
        return key
    path = Path(path or VAR_DIR / "review_secret")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_text().strip()
        if len(key) < 32:
            raise RuntimeError(f"{path} holds no usable secret (expected at least 32 characters)") from None
        return key
    key = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    os.chmod(path, 0o600)
    return key


def display_timezone() -> tzinfo:
    """REVIEW_TIMEZONE (e.g. America/Chicago), else the server's zone (TZ, /etc/timezone), else UTC."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    candidates = [os.environ.get("REVIEW_TIMEZONE", ""), os.environ.get("TZ", "")]
    try:
        candidates.append(Path("/etc/timezone").read_text())
    except OSError:
        pass
    for index, name in enumerate(candidates):
        name = name.strip().lstrip(":")
        if not name:
            continue
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            if index == 0:
                raise ValueError(f"REVIEW_TIMEZONE={name!r} is not a known IANA time zone") from None
    return ZoneInfo("UTC")
