"""Staff accounts (argon2 password hashes) and login rate limiting, in the review database."""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from enum import Enum

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Engine

from bot.review.db import login_failures, staff_sessions, staff_users

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
# at most this many failed logins per (username, client address) in the window -> HTTP 429
MAX_FAILURES = 5
FAILURE_WINDOW_S = 15 * 60
# and per client address over all usernames (password spraying)
MAX_FAILURES_PER_IP = 50

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not a real password, only to spend the same time")


class AccountError(ValueError):
    """A username or password that is not acceptable."""


@dataclass
class StaffUser:
    id: int
    username: str
    disabled: bool


class LoginResult(Enum):
    OK = "ok"
    WRONG = "wrong"
    LOCKED = "locked"


def normalise_username(username: str) -> str:
    return (username or "").strip().lower()


def check_username(username: str) -> str:
    name = normalise_username(username)
    if not USERNAME_PATTERN.match(name):
        raise AccountError("Username must be 1-64 characters: letters, digits, '.', '_', '-' or '@'.")
    return name


def check_password(password: str, username: str = "") -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"Password must be at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AccountError(f"Password must be at most {MAX_PASSWORD_LENGTH} characters.")
    if not password.strip():
        raise AccountError("Password must not be blank.")
    if username and normalise_username(password) == normalise_username(username):
        raise AccountError("Password must not be the username.")


def create_user(engine: Engine, username: str, password: str, replace: bool = False) -> StaffUser:
    """Create a staff account (or, with `replace`, set a new password for an existing one)."""
    name = check_username(username)
    check_password(password, name)
    password_hash = _hasher.hash(password)
    with engine.begin() as connection:
        existing = connection.execute(
            sa.select(staff_users.c.id).where(staff_users.c.username == name)
        ).scalar_one_or_none()
        if existing is not None:
            if not replace:
                raise AccountError(f"User {name!r} already exists (use --reset-password to set a new password).")
            connection.execute(
                staff_users.update().where(staff_users.c.id == existing).values(password_hash=password_hash,
                                                                                disabled=False)
            )
            connection.execute(staff_sessions.delete().where(staff_sessions.c.user_id == existing))
            return StaffUser(existing, name, False)
        result = connection.execute(
            staff_users.insert().values(username=name, password_hash=password_hash, created_at=time.time(),
                                        disabled=False)
        )
        return StaffUser(int(result.inserted_primary_key[0]), name, False)


def set_disabled(engine: Engine, username: str, disabled: bool) -> bool:
    """Disable (ending every session of the account) or re-enable a staff account."""
    name = normalise_username(username)
    with engine.begin() as connection:
        result = connection.execute(staff_users.update().where(staff_users.c.username == name).values(disabled=disabled))
        if disabled:
            ids = sa.select(staff_users.c.id).where(staff_users.c.username == name).scalar_subquery()
            connection.execute(staff_sessions.delete().where(staff_sessions.c.user_id == ids))
        return result.rowcount > 0


def get_user(engine: Engine, user_id: int) -> StaffUser | None:
    with engine.connect() as connection:
        row = connection.execute(sa.select(staff_users).where(staff_users.c.id == user_id)).first()
    return StaffUser(row.id, row.username, bool(row.disabled)) if row else None


def list_users(engine: Engine) -> list[StaffUser]:
    with engine.connect() as connection:
        rows = connection.execute(sa.select(staff_users).order_by(staff_users.c.username)).all()
    return [StaffUser(row.id, row.username, bool(row.disabled)) for row in rows]


def is_locked(engine: Engine, username: str, ip: str, now: float | None = None) -> bool:
    now = time.time() if now is None else now
    since = now - FAILURE_WINDOW_S
    with engine.connect() as connection:
        per_user = connection.execute(
            sa.select(sa.func.count()).select_from(login_failures).where(
                login_failures.c.username == username, login_failures.c.ip == ip, login_failures.c.at > since)
        ).scalar_one()
        if per_user >= MAX_FAILURES:
            return True
        per_ip = connection.execute(
            sa.select(sa.func.count()).select_from(login_failures).where(
                login_failures.c.ip == ip, login_failures.c.at > since)
        ).scalar_one()
    return per_ip >= MAX_FAILURES_PER_IP


def authenticate(engine: Engine, username: str, password: str, ip: str,
                 now: float | None = None) -> tuple[LoginResult, StaffUser | None]:
    """Check a login attempt; failures are counted per username + client address."""
    now = time.time() if now is None else now
    name = normalise_username(username)[:64]
    ip = (ip or "unknown")[:64]
    if is_locked(engine, name, ip, now):
        return LoginResult.LOCKED, None
    with engine.connect() as connection:
        row = connection.execute(sa.select(staff_users).where(staff_users.c.username == name)).first()
    ok = False
    try:
        ok = _hasher.verify(row.password_hash if row else _DUMMY_HASH, password[:MAX_PASSWORD_LENGTH])
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or row is None or row.disabled:
        with engine.begin() as connection:
            connection.execute(login_failures.insert().values(username=name, ip=ip, at=now))
            connection.execute(login_failures.delete().where(login_failures.c.at < now - 24 * 3600))
        return LoginResult.WRONG, None
    with engine.begin() as connection:
        values: dict[str, object] = {"last_login_at": now}
        if _hasher.check_needs_rehash(row.password_hash):
            values["password_hash"] = _hasher.hash(password)
        connection.execute(staff_users.update().where(staff_users.c.id == row.id).values(**values))
        connection.execute(login_failures.delete().where(login_failures.c.username == name, login_failures.c.ip == ip))
    return LoginResult.OK, StaffUser(row.id, row.username, False)


# --- server-side sessions ------------------------------------------------------------------------
TOUCH_EVERY_S = 60  # how often a session's last-seen time is written (not on every request)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", errors="replace")).hexdigest()


def start_session(engine: Engine, user_id: int, now: float | None = None) -> str:
    """A new session for the user; returns the token for the (signed) cookie. Only its digest is stored."""
    now = time.time() if now is None else now
    token = secrets.token_urlsafe(32)
    with engine.begin() as connection:
        connection.execute(staff_sessions.insert().values(token_hash=_token_hash(token), user_id=user_id,
                                                          created_at=now, seen_at=now))
    return token


def session_user(engine: Engine, token: str, idle_s: float, lifetime_s: float,
                 now: float | None = None) -> StaffUser | None:
    """The signed-in user of a live session, or None (unknown, signed out, idle, too old, account disabled).

    An ended session's row is deleted, so the same cookie never works again.
    """
    now = time.time() if now is None else now
    if not token or not isinstance(token, str) or len(token) > 200:
        return None
    digest = _token_hash(token)
    with engine.connect() as connection:
        row = connection.execute(
            sa.select(staff_sessions.c.created_at, staff_sessions.c.seen_at, staff_users.c.id, staff_users.c.username,
                      staff_users.c.disabled)
            .select_from(staff_sessions.join(staff_users, staff_users.c.id == staff_sessions.c.user_id))
            .where(staff_sessions.c.token_hash == digest)
        ).first()
    if row is None:
        return None
    if row.disabled or now - row.seen_at > idle_s or now - row.created_at > lifetime_s:
        end_session(engine, token)
        return None
    if now - row.seen_at > TOUCH_EVERY_S:
        with engine.begin() as connection:
            connection.execute(staff_sessions.update().where(staff_sessions.c.token_hash == digest).values(seen_at=now))
    return StaffUser(row.id, row.username, False)


def end_session(engine: Engine, token: str | None) -> None:
    if not token or not isinstance(token, str):
        return
    with engine.begin() as connection:
        connection.execute(staff_sessions.delete().where(staff_sessions.c.token_hash == _token_hash(token)))


def prune_sessions(engine: Engine, idle_s: float, lifetime_s: float, now: float | None = None) -> None:
    """Forget sessions that can no longer be used (called at each sign-in)."""
    now = time.time() if now is None else now
    with engine.begin() as connection:
        connection.execute(staff_sessions.delete().where(
            sa.or_(staff_sessions.c.seen_at < now - idle_s, staff_sessions.c.created_at < now - lifetime_s)))
