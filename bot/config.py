"""Every environment variable the project reads, read here: typed, with one default each.

| variable | default | what |
| --- | --- | --- |
| KNOWLEDGE_DIR, VAR_DIR | <project>/knowledge, <project>/var | data files; databases and secrets made at run time |
| CLINIC_NAME, CLINIC_PHONE, CLINIC_HOURS, CLINIC_EMERGENCY_NUMBER, CLINIC_WEBSITE | knowledge/clinic.yml | clinic settings |
| TRACKER_DB_URL | sqlite:///<var>/tracker.db | conversations (SQLAlchemy URL) |
| POSTGRESQL_SCHEMA | unset | schema of a PostgreSQL tracker store (the variable Rasa's SQLTrackerStore honours) |
| REDIS_URL | unset: in-process locks | Redis for conversation locks and SMS de-duplication |
| REDIS_LOCK_PREFIX | spineclinic | prefix of our Redis keys (letters and digits only) |
| BOT_REPLY_TIMEOUT_S | 10 | seconds before a patient gets the safe reply |
| RASA_AUTH_TOKEN | unset: `make run` generates <var>/rasa_auth_token | Rasa HTTP API token (`--auth-token`); the REST channel requires it too |
| TWILIO_AUTH_TOKEN, TWILIO_WEBHOOK_URL | unset | SMS channel: signature validation |
| WEB_ALLOWED_ORIGINS | http://localhost:<WEB_PORT>, http://127.0.0.1:<WEB_PORT> | sites whose pages may open the website chat (socket.io), comma-separated; `*` = any site |
| WEB_PORT, WEB_HOST, RASA_SERVER_URL | 8080, 127.0.0.1, http://localhost:5005 | the web demo (web/serve.py) and the bot URL its widget uses; the review app sends staff replies to the bot there |
| SMS_STATE_DB_URL | TRACKER_DB_URL | SMS opt-outs and seen MessageSids |
| REVIEW_DB_URL | sqlite:///<var>/review.db | staff accounts, login failures, access log |
| REVIEW_HOST, REVIEW_PORT | 127.0.0.1, 8081 | where `python -m bot.review serve` listens |
| RASA_PORT | 5005 | where `make run` (scripts/run.sh, deploy/) starts the Rasa server |
| ACTION_SERVER_HOST, ACTION_PORT | 127.0.0.1, 5055 | where the action server listens (it has no auth: keep it local) |
| REVIEW_SECRET_KEY | generated into <var>/review_secret (0600) | signs session cookies and CSRF tokens |
| REVIEW_COOKIE_SECURE | 1 | 1: cookies only over HTTPS (0 for plain-HTTP local use) |
| REVIEW_TRUST_PROXY | 0 | 1: take the client address from one reverse proxy's X-Forwarded-For |
| REVIEW_TIMEZONE | the server's zone (TZ, /etc/timezone), else UTC | IANA zone used to show times and group by day |
| REVIEW_NEW_PASSWORD | unset: prompted | password for `create-user` without a terminal |
| ALERTS_DB_URL | sqlite:///<var>/alerts.db | escalation alerts outbox and delivery status (bot/alerts) |
| RABBITMQ_URL | unset: the alert worker reads the tracker store's events table | Rasa event broker (amqp://user:pass@host:5672/vhost) the alert worker consumes |
| ALERT_SMTP_URL | unset: no alert e-mail | smtp://[user:pass@]host[:port], smtps://... (TLS) or smtp+starttls://... |
| ALERT_EMAIL_FROM, ALERT_EMAIL_TO, ALERT_AFTER_HOURS_EMAIL_TO, ALERT_ON_CALL_PHONE, ALERT_OFFICE_HOURS | knowledge/clinic.yml `alerts` | alert settings |
| TWILIO_ACCOUNT_SID, TWILIO_FROM_NUMBER | unset: no SMS alerts | Twilio REST API account and sending number (with TWILIO_AUTH_TOKEN) |
| TWILIO_API_URL | https://api.twilio.com | Twilio REST API base URL (tests point it at a local fake) |
| REVIEW_PUBLIC_URL | http://localhost:<REVIEW_PORT> | review app address used in alert transcript links |
| ALERT_POLL_S | 1 (0.5 to 60) | seconds between the alert worker's reads of new tracker events (also its safety sweep with RabbitMQ) |
| STAFF_TAKEOVER_MINUTES | 60 (1 to 720) | how long a staff takeover lasts unless handed back earlier (review app; bot/takeover.py) |
| OUTREACH_DB_URL | sqlite:///<var>/outreach.db | appointments and scheduled reminder / check-in texts (bot/outreach) |
| OUTREACH_COUNTRY_CODE | 1 | calling code added to phone numbers written without one (appointments, E.164) |
| OUTREACH_POLL_S | 15 (1 to 300) | seconds between the outreach worker's passes (plan, send what is due) |
| OUTREACH_STATUS_URL | TWILIO_WEBHOOK_URL with /webhook -> /status | public URL of the SMS channel's status callback (Twilio reports delivered / failed there) |

Values are read when asked for, so a process (or a test) that sets a variable before use sees it.
A variable that is set but unusable raises ConfigError, always worded the same way; an empty value
counts as unset.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from datetime import tzinfo
from pathlib import Path
from urllib.parse import urlsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# clinic setting (knowledge/clinic.yml field) -> the variable that overrides it
CLINIC_SETTING_VARIABLES = {
    "clinic_name": "CLINIC_NAME",
    "clinic_phone": "CLINIC_PHONE",
    "clinic_hours": "CLINIC_HOURS",
    "emergency_number": "CLINIC_EMERGENCY_NUMBER",
    "clinic_website": "CLINIC_WEBSITE",
}
# alert setting (knowledge/clinic.yml `alerts` field) -> the variable that overrides it
ALERT_SETTING_VARIABLES = {
    "email_from": "ALERT_EMAIL_FROM",
    "email_to": "ALERT_EMAIL_TO",
    "after_hours_email_to": "ALERT_AFTER_HOURS_EMAIL_TO",
    "on_call_phone": "ALERT_ON_CALL_PHONE",
    "office_hours": "ALERT_OFFICE_HOURS",
}
DEFAULT_TWILIO_API_URL = "https://api.twilio.com"
DEFAULT_ALERT_POLL_S = 1.0
DEFAULT_REDIS_LOCK_PREFIX = "spineclinic"
DEFAULT_REPLY_TIMEOUT_S = 10.0
MIN_REPLY_TIMEOUT_S = 0.5
DEFAULT_REVIEW_HOST = "127.0.0.1"
DEFAULT_REVIEW_PORT = 8081
DEFAULT_RASA_PORT = 5005
DEFAULT_ACTION_SERVER_HOST = "127.0.0.1"
DEFAULT_ACTION_PORT = 5055
DEFAULT_WEB_HOST = "127.0.0.1"
DEFAULT_WEB_PORT = 8080
DEFAULT_RASA_SERVER_URL = "http://localhost:5005"
MIN_SECRET_KEY_CHARS = 32
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ConfigError(ValueError):
    """An environment variable is set to a value the project cannot use."""

    def __init__(self, name: str, value: str, expected: str):
        super().__init__(f"environment variable {name}={value!r}: expected {expected}")


def _text(name: str) -> str:
    return os.environ.get(name, "").strip()


def _optional(name: str) -> str | None:
    return _text(name) or None


def _flag(name: str, default: bool) -> bool:
    raw = _text(name).lower()
    if not raw:
        return default
    if raw in _TRUE | _FALSE:
        return raw in _TRUE
    raise ConfigError(name, raw, "1 or 0 (or true/false, yes/no, on/off)")


def _number(name: str, default: float, minimum: float, maximum: float | None = None) -> float:
    raw = _text(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if maximum is not None and not minimum <= value <= maximum:  # also refuses nan
        raise ConfigError(name, raw, f"a number from {minimum:g} to {maximum:g}")
    if not value >= minimum:
        raise ConfigError(name, raw, f"a number of at least {minimum:g}")
    return value


def _port(name: str, default: int) -> int:
    raw = _text(name)
    if not raw:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ConfigError(name, raw, "a port number from 1 to 65535")
    return int(raw)


def _database_url(name: str, default_file: str) -> str:
    """A SQLAlchemy URL, else a SQLite file in the var directory (created on first use)."""
    url = _text(name)
    if url:
        return url
    directory = var_dir()
    directory.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{directory / default_file}"


# --- files ---------------------------------------------------------------------------------------
def knowledge_dir() -> Path:
    return Path(_text("KNOWLEDGE_DIR") or PROJECT_ROOT / "knowledge")


def var_dir() -> Path:
    return Path(_text("VAR_DIR") or PROJECT_ROOT / "var")


def clinic_overrides(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Clinic settings given in the environment (or in `environ`), by setting name."""
    environ = os.environ if environ is None else environ
    values = {field: (environ.get(name) or "").strip() for field, name in CLINIC_SETTING_VARIABLES.items()}
    return {field: value for field, value in values.items() if value}


# --- conversations and locks -----------------------------------------------------------------------
def tracker_db_url() -> str:
    return _database_url("TRACKER_DB_URL", "tracker.db")


def postgresql_schema() -> str | None:
    return _optional("POSTGRESQL_SCHEMA")


def redis_url() -> str | None:
    return _optional("REDIS_URL")


def redis_lock_prefix() -> str:
    """Prefix of every key we keep in Redis; Rasa's lock store accepts letters and digits only."""
    prefix = _text("REDIS_LOCK_PREFIX") or DEFAULT_REDIS_LOCK_PREFIX
    if not prefix.isalnum():
        raise ConfigError("REDIS_LOCK_PREFIX", prefix, "letters and digits only")
    return prefix


# --- processes started by scripts/run.sh (make run) and deploy/ ------------------------------------
def rasa_port() -> int:
    return _port("RASA_PORT", DEFAULT_RASA_PORT)


def action_server_host() -> str:
    """The action server answers anyone who reaches it, without auth: local only unless asked."""
    return _text("ACTION_SERVER_HOST") or DEFAULT_ACTION_SERVER_HOST


def action_server_port() -> int:
    return _port("ACTION_PORT", DEFAULT_ACTION_PORT)


def action_server_url() -> str:
    """The action endpoint the Rasa server calls (a wildcard bind address is reached over loopback)."""
    host = action_server_host()
    if host == "0.0.0.0":
        host = "127.0.0.1"
    elif host in {"::", "[::]"}:
        host = "[::1]"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{action_server_port()}/webhook"


# --- channels --------------------------------------------------------------------------------------
def reply_timeout_s() -> float:
    """Seconds to wait for the bot before the patient gets the safe reply."""
    return _number("BOT_REPLY_TIMEOUT_S", DEFAULT_REPLY_TIMEOUT_S, MIN_REPLY_TIMEOUT_S)


def rasa_auth_token() -> str | None:
    """The token Rasa's HTTP API runs with; the REST channel refuses every request without it."""
    return _optional("RASA_AUTH_TOKEN")


def twilio_auth_token() -> str | None:
    return _optional("TWILIO_AUTH_TOKEN")


def twilio_webhook_url() -> str | None:
    return _optional("TWILIO_WEBHOOK_URL")


def sms_state_db_url() -> str:
    return _text("SMS_STATE_DB_URL") or tracker_db_url()


# --- website chat ------------------------------------------------------------------------------------
def web_port() -> int:
    return _port("WEB_PORT", DEFAULT_WEB_PORT)


def web_host() -> str:
    return _text("WEB_HOST") or DEFAULT_WEB_HOST


def rasa_server_url() -> str:
    """The bot's URL as the web demo's widget reaches it (the page's data-server)."""
    return _text("RASA_SERVER_URL").rstrip("/") or DEFAULT_RASA_SERVER_URL


def _origin(name: str, raw: str, item: str) -> str:
    """`scheme://host[:port]` exactly as a browser sends it in the Origin header (no default port)."""
    parts = urlsplit(item.rstrip("/"))
    expected = "origins like https://clinic.example or http://localhost:8080, comma-separated, or *"
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(name, raw, expected) from None
    if parts.scheme not in {"http", "https"} or not parts.hostname or parts.path or parts.query or parts.fragment \
            or parts.username or parts.password:
        raise ConfigError(name, raw, expected)
    default = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def web_allowed_origins() -> list[str]:
    """Sites whose pages may talk to the website chat (engine.io checks the Origin header).

    Default: the web demo's own origins, never any site; `*` must be asked for explicitly.
    """
    raw = _text("WEB_ALLOWED_ORIGINS")
    if not raw:
        port = web_port()
        return [f"http://localhost:{port}", f"http://127.0.0.1:{port}"]
    items = [item for item in re.split(r"[,\s]+", raw) if item]
    if items == ["*"]:
        return ["*"]
    return list(dict.fromkeys(_origin("WEB_ALLOWED_ORIGINS", raw, item) for item in items))


# --- staff review ------------------------------------------------------------------------------------
def review_db_url() -> str:
    return _database_url("REVIEW_DB_URL", "review.db")


def review_host() -> str:
    return _text("REVIEW_HOST") or DEFAULT_REVIEW_HOST


def review_port() -> int:
    return _port("REVIEW_PORT", DEFAULT_REVIEW_PORT)


def review_cookie_secure() -> bool:
    return _flag("REVIEW_COOKIE_SECURE", True)


def review_trust_proxy() -> bool:
    return _flag("REVIEW_TRUST_PROXY", False)


def review_new_password() -> str | None:
    """Not stripped: spaces may be part of a passphrase."""
    return os.environ.get("REVIEW_NEW_PASSWORD")


def review_secret_key(path: Path | None = None) -> str:
    """REVIEW_SECRET_KEY, or a random key kept in var/review_secret (created with 0600 permissions)."""
    key = _text("REVIEW_SECRET_KEY")
    if key:
        return key
    path = Path(path or var_dir() / "review_secret")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_text().strip()
        if len(key) < MIN_SECRET_KEY_CHARS:
            raise RuntimeError(f"{path} holds no usable secret (expected at least {MIN_SECRET_KEY_CHARS} "
                               "characters)") from None
        return key
    key = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    os.chmod(path, 0o600)
    return key


def review_timezone() -> tzinfo:
    """REVIEW_TIMEZONE (e.g. America/Chicago), else the server's zone (TZ, /etc/timezone), else UTC."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    configured = _text("REVIEW_TIMEZONE")
    if configured:
        try:
            return ZoneInfo(configured)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError("REVIEW_TIMEZONE", configured, "an IANA time zone such as America/Chicago") from None
    candidates = [_text("TZ")]
    try:
        candidates.append(Path("/etc/timezone").read_text())
    except OSError:
        pass
    for name in candidates:
        name = name.strip().lstrip(":")  # TZ may be written ":Europe/Paris"
        if not name:
            continue
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return ZoneInfo("UTC")


# --- escalation alerts (bot/alerts) ---------------------------------------------------------------------
def alert_overrides(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Alert settings given in the environment (or in `environ`), by setting name."""
    environ = os.environ if environ is None else environ
    values = {field: (environ.get(name) or "").strip() for field, name in ALERT_SETTING_VARIABLES.items()}
    return {field: value for field, value in values.items() if value}


def _without_password(url: str) -> str:
    """A URL as it may appear in an error message: its password replaced by ***."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


def alerts_db_url() -> str:
    return _database_url("ALERTS_DB_URL", "alerts.db")


def rabbitmq_url() -> str | None:
    """RabbitMQ for Rasa's event broker; unset: the alert worker reads the tracker store's events table."""
    url = _optional("RABBITMQ_URL")
    if url and urlsplit(url).scheme not in {"amqp", "amqps"}:
        raise ConfigError("RABBITMQ_URL", _without_password(url), "an amqp:// or amqps:// URL")
    return url


def alert_smtp_url() -> str | None:
    url = _optional("ALERT_SMTP_URL")
    if url:
        parts = urlsplit(url)
        expected = "smtp://[user:password@]host[:port] (or smtps://, smtp+starttls://)"
        try:
            port_ok = parts.port is None or parts.port > 0
        except ValueError:
            port_ok = False
        if not port_ok or parts.scheme not in {"smtp", "smtps", "smtp+starttls"} or not parts.hostname:
            raise ConfigError("ALERT_SMTP_URL", _without_password(url), expected)
    return url


def twilio_account_sid() -> str | None:
    return _optional("TWILIO_ACCOUNT_SID")


def twilio_from_number() -> str | None:
    return _optional("TWILIO_FROM_NUMBER")


def twilio_api_url() -> str:
    url = _text("TWILIO_API_URL").rstrip("/") or DEFAULT_TWILIO_API_URL
    if urlsplit(url).scheme not in {"http", "https"}:
        raise ConfigError("TWILIO_API_URL", url, "an http(s) URL")
    return url


def review_public_url() -> str:
    """The review app's address as staff reach it (transcript links in alerts)."""
    return _text("REVIEW_PUBLIC_URL").rstrip("/") or f"http://localhost:{review_port()}"


def alert_poll_s() -> float:
    return _number("ALERT_POLL_S", DEFAULT_ALERT_POLL_S, 0.5, 60)


# --- staff replies and takeover (bot/review/replies.py, bot/takeover.py) ----------------------------------
DEFAULT_STAFF_TAKEOVER_MINUTES = 60.0


def staff_takeover_minutes() -> float:
    return _number("STAFF_TAKEOVER_MINUTES", DEFAULT_STAFF_TAKEOVER_MINUTES, 1, 720)


# --- appointment reminders and check-ins (bot/outreach) ---------------------------------------------------
DEFAULT_OUTREACH_COUNTRY_CODE = "1"


def outreach_db_url() -> str:
    return _database_url("OUTREACH_DB_URL", "outreach.db")


def outreach_country_code() -> str:
    """Calling code (digits, no +) for phone numbers written without one, e.g. 1 (US/Canada) or 44."""
    raw = _text("OUTREACH_COUNTRY_CODE").lstrip("+") or DEFAULT_OUTREACH_COUNTRY_CODE
    if not re.fullmatch(r"[1-9]\d{0,2}", raw):
        raise ConfigError("OUTREACH_COUNTRY_CODE", raw, "a calling code of 1 to 3 digits, such as 1 or 44")
    return raw


DEFAULT_OUTREACH_POLL_S = 15.0


def outreach_poll_s() -> float:
    return _number("OUTREACH_POLL_S", DEFAULT_OUTREACH_POLL_S, 1, 300)


def outreach_status_url() -> str | None:
    """Where Twilio posts an outreach text's status: OUTREACH_STATUS_URL, else the SMS webhook's sibling /status."""
    url = _optional("OUTREACH_STATUS_URL")
    if url:
        if urlsplit(url).scheme not in {"http", "https"}:
            raise ConfigError("OUTREACH_STATUS_URL", url, "an http(s) URL")
        return url
    webhook = twilio_webhook_url()
    if webhook and urlsplit(webhook).path.rstrip("/").endswith("/webhook"):
        parts = urlsplit(webhook)
        return parts._replace(path=parts.path.rstrip("/")[: -len("/webhook")] + "/status", query="").geturl()
    return None
