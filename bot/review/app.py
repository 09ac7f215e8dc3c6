"""The staff review web app (Flask, server-rendered Jinja pages, no JavaScript).

Every page needs a signed-in staff member; forms (login and logout included) carry CSRF tokens;
patient text is always autoescaped. Conversations are read through a read-only engine.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import (
    Flask,
    Response,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy.engine import Engine

from bot import config
from bot.review import accesslog, auth
from bot.review.charts import dashboard_charts
from bot.review.db import StoreUnavailable, review_engine, tracker_engine
from bot.review.filters import CHANNEL_LABELS, CHANNELS, BadParameter, Filters, channel_label, parse_day, parse_page
from bot.review.masking import mask_sender, mask_text
from bot.review.service import EXPORT_FORMATS, Export, ReviewService
from bot.review.store import ConversationStore

logger = logging.getLogger(__name__)

PER_PAGE = 50
MAX_REF = 2**63 - 1  # conversation numbers are database ids (64-bit); a larger one cannot exist
IDLE_TIMEOUT_S = 30 * 60
SESSION_LIFETIME = timedelta(hours=12)
PUBLIC_ENDPOINTS = {"login", "static"}
CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")


@dataclass
class ReviewContext:
    store: ConversationStore
    review_db: Engine
    tz: tzinfo


def _ctx() -> ReviewContext:
    from flask import current_app

    return current_app.extensions["review"]


def _clinic_name() -> str:
    try:
        from bot.settings import clinic_settings

        return clinic_settings().clinic_name
    except Exception:  # noqa: BLE001 - the review app works without clinic settings
        return "Spine clinic"


def create_app(tracker_url: str | None = None, review_url: str | None = None, **overrides: Any) -> Flask:
    app = Flask(__name__, template_folder="templates", static_folder="static")
    app.config.update(
        SECRET_KEY=overrides.pop("SECRET_KEY", None) or config.review_secret_key(),
        SESSION_COOKIE_NAME="review_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.review_cookie_secure(),
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session (which has its own timeouts)
        MAX_CONTENT_LENGTH=64 * 1024,
        TEMPLATES_AUTO_RELOAD=False,
    )
    app.config.update(overrides)
    if config.review_trust_proxy():
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1)  # type: ignore[method-assign]
    tz = config.review_timezone()
    app.extensions["review"] = ReviewContext(
        store=ConversationStore(tracker_engine(tracker_url or config.tracker_db_url()), tz),
        review_db=review_engine(review_url or config.review_db_url()),
        tz=tz,
    )
    CSRFProtect(app)
    app.jinja_env.autoescape = True
    clinic = _clinic_name()

    # --- template helpers ----------------------------------------------------------------
    @app.template_filter("when")
    def when(value: datetime | float | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
        if value is None:
            return ""
        if isinstance(value, (int, float)):
            value = datetime.fromtimestamp(value, _ctx().tz)
        return value.strftime(fmt)

    @app.template_filter("mask")
    def mask(value: str | None) -> str:
        return mask_sender(value)

    @app.template_filter("mask_text")
    def mask_in_text(value: str | None) -> str:
        """Phone numbers and e-mail addresses inside patient text, masked like conversation ids."""
        return mask_text(value)

    @app.template_filter("pct")
    def pct(value: float | None) -> str:
        return "–" if value is None else f"{value * 100:.1f}%"

    @app.template_filter("num")
    def num(value: int | float | None) -> str:
        return "0" if not value else f"{value:,}"

    @app.context_processor
    def globals_() -> dict[str, Any]:
        tz = _ctx().tz
        return {
            "clinic_name": clinic,
            "staff": g.get("user"),
            "tz_name": getattr(tz, "key", None) or str(tz),
            "channel_label": channel_label,
        }

    # --- security ------------------------------------------------------------------------
    @app.before_request
    def refuse_nul_characters():
        """NUL cannot be stored or searched (PostgreSQL refuses it): a 400, before anything reads the values."""
        for values in (request.args, request.form):
            for key, value in values.items(multi=True):
                if "\x00" in key or "\x00" in value:
                    raise BadParameter(["Parameters must not contain NUL characters."])
        return None

    @app.before_request
    def require_login():
        """The cookie names a server-side session (bot.review.auth): signing out, idling, the 12-hour limit,
        a disabled account or a password reset ends it on the server, so a copied cookie stops working."""
        g.user = None
        token = session.get("sid")
        if token is not None:
            user = auth.session_user(_ctx().review_db, token, IDLE_TIMEOUT_S, SESSION_LIFETIME.total_seconds())
            if user is None:
                session.clear()
                if request.endpoint not in PUBLIC_ENDPOINTS:
                    flash("Your session ended. Please sign in again.", "info")
            else:
                g.user = user
        if g.user is None and request.endpoint not in PUBLIC_ENDPOINTS:
            if request.endpoint is None:
                abort(404)
            target = request.full_path if request.query_string else request.path
            return redirect(url_for("login", next=target))
        return None

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"  # Flask-WTF checks the Referer on HTTPS
        response.headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
        if request.endpoint != "static":
            response.headers["Cache-Control"] = "no-store"
        if app.config["SESSION_COOKIE_SECURE"]:
            response.headers["Strict-Transport-Security"] = "max-age=31536000"
        return response

    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError):
        return render_template("error.html", title="Form expired",
                               message="The form had expired or was not sent from this site. Please try again."), 400

    @app.errorhandler(BadParameter)
    def bad_parameter(error: BadParameter):
        return render_template("error.html", title="Bad request", message=" ".join(error.problems)), 400

    @app.errorhandler(StoreUnavailable)
    def store_unavailable(error: StoreUnavailable):
        logger.error("Tracker store unavailable: %s", error)
        return render_template("error.html", title="Conversations unavailable",
                               message="The conversation store cannot be read right now. "
                                       "Please try again in a minute or tell the administrator."), 503

    @app.errorhandler(404)
    def not_found(error):
        return render_template("error.html", title="Not found",
                               message="There is no such page or conversation."), 404

    @app.errorhandler(429)
    def too_many(error):
        return render_template("error.html", title="Too many attempts", message=str(error.description)), 429

    def client_ip() -> str:
        return request.remote_addr or "unknown"

    def service() -> ReviewService:
        """The staff actions, recorded in the access log as the signed-in user."""
        return ReviewService(_ctx().store, _ctx().review_db, g.user.username, client_ip())

    # --- sign in / out -------------------------------------------------------------------
    @app.route("/login", methods=["GET", "POST"])
    def login():
        if g.user is not None and request.method == "GET":
            return redirect(url_for("followup.queue"))
        next_url = request.values.get("next", "")
        if not _safe_next(next_url):
            next_url = ""
        error = None
        status = 200
        username = ""
        if request.method == "POST":
            username = (request.form.get("username") or "").strip()[:64]
            password = request.form.get("password") or ""
            result, user = auth.authenticate(_ctx().review_db, username, password, client_ip())
            if result is auth.LoginResult.LOCKED:
                error = (f"Too many failed sign-in attempts. Please wait {auth.FAILURE_WINDOW_S // 60} minutes "
                         "and try again.")
                status = 429
            elif result is auth.LoginResult.OK and user is not None:
                auth.end_session(_ctx().review_db, session.get("sid"))
                auth.prune_sessions(_ctx().review_db, IDLE_TIMEOUT_S, SESSION_LIFETIME.total_seconds())
                session.clear()
                session.permanent = True
                session["sid"] = auth.start_session(_ctx().review_db, user.id)
                g.user = user
                service().record("login")
                return redirect(next_url or url_for("followup.queue"))
            else:
                error = "Wrong username or password."
                status = 401
        return render_template("login.html", error=error, username=username, next_url=next_url), status

    @app.post("/logout")
    def logout():
        service().record("logout")
        auth.end_session(_ctx().review_db, session.get("sid"))
        session.clear()
        flash("You are signed out.", "info")
        return redirect(url_for("login"))

    # --- conversations -------------------------------------------------------------------
    @app.get("/")
    def index():
        return redirect(url_for("followup.queue"))  # staff land on the follow-up queue

    def filters_from(values) -> Filters:
        """Filters from the query or form; a value that cannot be used is a 400 that says which."""
        filters, errors, notes = Filters.parse_checked(values)
        if errors:
            raise BadParameter(errors)
        for note in notes:
            flash(note, "warning")
        return filters

    @app.get("/conversations")
    def conversations():
        filters = filters_from(request.args)
        page_number = parse_page(request.args.get("page"))
        page = service().list_conversations(filters, page_number, PER_PAGE)
        params = filters.as_params()
        return render_template(
            "conversations.html",
            page=page,
            filters=filters,
            params=params,
            query=urlencode(params),
            channels=[(key, CHANNEL_LABELS[value]) for key, value in CHANNELS.items()],
            page_url=lambda n: url_for("conversations", **params, page=n),
        )

    @app.route("/conversations/export", methods=["GET", "POST"])
    def export_list():
        source = request.args if request.method == "GET" else request.form
        filters = filters_from(source)
        fmt = _format(source.get("format"))
        unmask = request.method == "POST" and source.get("unmask") == "1" and source.get("confirm") == "1"
        if request.method == "POST" and not unmask:
            flash("To export full phone numbers, tick the confirmation box.", "warning")
            return redirect(url_for("conversations", **filters.as_params()))
        return _download(service().export_list(filters, fmt, unmask))

    def load_transcript(ref: int):
        if not 0 < ref <= MAX_REF:
            abort(404)
        store = _ctx().store
        sender = store.sender_for_ref(ref)
        transcript = store.transcript(sender) if sender else None
        if transcript is None:
            abort(404)
        return transcript

    @app.get("/conversations/<int:ref>")
    def conversation(ref: int):
        transcript = load_transcript(ref)
        service().view_transcript(transcript)
        back = request.args.get("back", "")
        back_url = url_for("conversations") + ("?" + back if back and _safe_query(back) else "")
        return render_template("conversation.html", t=transcript, back_url=back_url)

    @app.route("/conversations/<int:ref>/export", methods=["GET", "POST"])
    def export_conversation(ref: int):
        source = request.args if request.method == "GET" else request.form
        fmt = _format(source.get("format"))
        unmask = request.method == "POST" and source.get("unmask") == "1" and source.get("confirm") == "1"
        if request.method == "POST" and not unmask:
            flash("To export the full phone number, tick the confirmation box.", "warning")
            return redirect(url_for("conversation", ref=ref))
        transcript = load_transcript(ref)
        return _download(service().export_transcript(transcript, fmt, unmask))

    from bot.review.replies import register as register_replies

    register_replies(app, load_transcript, service)  # staff replies and takeover (forms on the transcript page)

    # --- dashboard -----------------------------------------------------------------------
    @app.get("/dashboard")
    def dashboard():
        today = datetime.now(_ctx().tz).date()
        date_to = parse_day(request.args.get("to"), "To date") or today
        date_from = parse_day(request.args.get("from"), "From date") or date_to - timedelta(days=29)
        if date_from > date_to:
            date_from, date_to = date_to, date_from
        if (date_to - date_from).days > 366:
            flash("The dashboard shows at most one year; the start date was moved.", "warning")
            date_from = date_to - timedelta(days=366)
        data = _ctx().store.dashboard(date_from, date_to)
        service().record("view_dashboard", detail=f"{date_from} to {date_to}")
        from bot.review.labels import learning_figures

        return render_template("dashboard.html", d=data, date_from=date_from, date_to=date_to,
                               charts=dashboard_charts(data), learning=learning_figures(_ctx().review_db, data, _ctx().tz))

    # --- access log ----------------------------------------------------------------------
    @app.get("/access-log")
    def access_log_page():
        page_number = parse_page(request.args.get("page"))
        user_filter = "".join(ch for ch in (request.args.get("user") or "") if ch.isprintable()).strip().lower()[:80] or None
        entries, total = accesslog.read(_ctx().review_db, PER_PAGE, (page_number - 1) * PER_PAGE, user_filter)
        service().record("view_access_log", detail=f"page {page_number}" + (f"; user {user_filter}" if user_filter else ""))
        pages = max(1, -(-total // PER_PAGE))
        params = {"user": user_filter} if user_filter else {}
        return render_template("access_log.html", entries=entries, total=total, page=page_number, pages=pages,
                               user_filter=user_filter or "",
                               page_url=lambda n: url_for("access_log_page", **params, page=n))

    from bot.review.followup_views import register as register_followup

    register_followup(app)  # the follow-up queue (landing page) and the learning pages

    from bot.review.appointment_views import register as register_appointments

    register_appointments(app)  # appointments for reminder and check-in texts (bot/outreach)
    return app


# --- helpers ---------------------------------------------------------------------------------
def _format(raw: str | None) -> str:
    fmt = (raw or "csv").strip().lower()
    if fmt not in EXPORT_FORMATS:
        raise BadParameter([f"Format must be one of {', '.join(EXPORT_FORMATS)}."])
    return fmt


def _safe_next(target: str) -> bool:
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc


def _safe_query(query: str) -> bool:
    return len(query) < 1000 and "\n" not in query and "\r" not in query


def _download(export: Export) -> Response:
    response = Response(export.body.encode("utf-8"), mimetype=export.mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{export.filename}"'
    return response

