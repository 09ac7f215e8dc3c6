"""Appointment pages of the review app (a Flask blueprint): list, add, change, cancel, CSV import, the texts of
each appointment, and check-ins nobody answered (so staff can call).

The app's guards apply unchanged: login (before_request), CSRF on every POST, autoescaped templates, 400/404
pages; every view and change is written to the access log (with the patient's number as its sender id).
Appointments live in OUTREACH_DB_URL (bot.outreach.appointments). The outbox (bot.outreach.outbox) is imported
here so its change hook runs: cancelling or moving an appointment cancels or moves its waiting texts in the
same transaction.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Flask, abort, current_app, flash, g, redirect, render_template, request, url_for

from bot import config
from bot.datafile import DataFileError
from bot.outreach import appointments as ap
from bot.review import accesslog
from bot.review.filters import BadParameter, parse_page

logger = logging.getLogger(__name__)

PER_PAGE = 50
NO_REPLY_TTL_S = 30.0
MAX_ID = 2**31 - 1
STATUS_CHOICES = ("active", "cancelled", "all")
WHEN_CHOICES = ("upcoming", "past", "all")
MESSAGE_STATUS_LABELS = {"pending": "Waiting", "sending": "Sending", "sent": "Sent", "delivered": "Delivered",
                         "failed": "Failed", "cancelled": "Not sent"}
REASON_LABELS = {"appointment_cancelled": "appointment cancelled", "rescheduled": "appointment moved",
                 "no_consent": "no consent to texts", "opted_out": "patient texted STOP",
                 "too_late": "its time had passed"}
ACCESS_ACTIONS = {
    "view_appointments": "Viewed appointments",
    "view_appointment": "Viewed an appointment and its texts",
    "appointment_add": "Added an appointment",
    "appointment_update": "Changed an appointment",
    "appointment_cancel": "Cancelled an appointment",
    "appointment_import": "Imported appointments (CSV)",
    "view_no_reply": "Viewed unanswered check-ins",
}
accesslog.ACTIONS.update(ACCESS_ACTIONS)  # the access-log page names these actions

appointment_pages = Blueprint("appointments", __name__)


def _store() -> ap.AppointmentStore:
    return current_app.extensions["appointments"]


def _record(action: str, sender_id: str | None = None, detail: str = "") -> None:
    accesslog.record(current_app.extensions["review"].review_db, g.user.username, action, sender_id, detail,
                     request.remote_addr or "unknown")


def _outbox():
    """bot.outreach.outbox, or None where it is not installed (the pages then show no texts)."""
    try:
        from bot.outreach import outbox
    except ImportError:
        return None
    return outbox


@dataclass(frozen=True)
class ListFilters:
    status: str = "active"
    when: str = "upcoming"
    phone: str | None = None  # E.164

    @classmethod
    def parse(cls, values) -> ListFilters:
        errors = []
        status = (values.get("status") or "active").strip().lower()
        if status not in STATUS_CHOICES:
            errors.append(f"Status must be one of {', '.join(STATUS_CHOICES)}.")
        when = (values.get("when") or "upcoming").strip().lower()
        if when not in WHEN_CHOICES:
            errors.append(f"When must be one of {', '.join(WHEN_CHOICES)}.")
        phone = None
        raw_phone = (values.get("phone") or "").strip()
        if raw_phone:
            try:
                phone = ap.normalise_phone(raw_phone[:40])
            except ap.PhoneError as error:
                errors.append(f"Phone {error}.")
        if errors:
            raise BadParameter(errors)
        return cls(status, when, phone)

    def as_params(self) -> dict[str, str]:
        params = {"status": self.status if self.status != "active" else "",
                  "when": self.when if self.when != "upcoming" else "", "phone": self.phone or ""}
        return {key: value for key, value in params.items() if value}

    def query(self, now: float) -> dict[str, Any]:
        return {"status": None if self.status == "all" else self.status,
                "since": now if self.when == "upcoming" else None,
                "until": now if self.when == "past" else None, "phone": self.phone}


def _load(appointment_id: int) -> ap.Appointment:
    if not 0 < appointment_id <= MAX_ID:
        abort(404)
    try:
        return _store().get(appointment_id)
    except ap.NotFound:
        abort(404)


def _form_values(form) -> dict[str, str]:
    """The form as typed (each field trimmed and bounded), to check and to show again after an error."""
    return {name: (form.get(name) or "").strip()[:80]
            for name in ("phone", "procedure", "date", "time", "time_zone", "consent")}


def _check(values: dict[str, str], current: ap.Appointment | None = None) -> ap.AppointmentInput:
    """Checked form values; an appointment already under way or past may still change its other values."""
    return ap.check_values(values["phone"], values["procedure"], values["date"], values["time"],
                           values["time_zone"], "yes" if values["consent"] == "yes" else "no",
                           past_start=current.starts_at if current else None)


def _values_of(appointment: ap.Appointment) -> dict[str, str]:
    local = appointment.local_start
    return {"phone": appointment.phone, "procedure": appointment.procedure, "date": local.date().isoformat(),
            "time": local.strftime("%H:%M"), "time_zone": appointment.time_zone,
            "consent": "yes" if appointment.consent else ""}


def _render_form(values: dict[str, str], problems: dict[str, str], appointment: ap.Appointment | None = None,
                 status: int = 200):
    return render_template("appointment_form.html", values=values, problems=problems, appointment=appointment,
                           zones=ap.zone_choices(), procedures=ap.PROCEDURES), status


def _schedule_problem(error: Exception):
    """The schedule file could not be read while planning texts: say so instead of failing with a 500."""
    logger.error("Outreach schedule cannot be used: %s", error)
    return render_template("error.html", title="Schedule file has an error",
                           message=f"Nothing was changed. Tell the administrator: {error}"), 503


# --- pages --------------------------------------------------------------------------------------------
@appointment_pages.get("/appointments")
def index():
    filters = ListFilters.parse(request.args)
    page_number = parse_page(request.args.get("page"))
    now = time.time()
    query = filters.query(now)
    total = _store().count(**query)
    pages = max(1, -(-total // PER_PAGE))
    rows = _store().list_appointments(**query, limit=PER_PAGE, offset=(min(page_number, pages) - 1) * PER_PAGE)
    if filters.when == "past":
        rows.reverse()  # the most recent first
    _record("view_appointments", detail=f"{filters.as_params() or 'upcoming, active'}; page {page_number}")
    params = filters.as_params()
    return render_template("appointments.html", rows=rows, filters=filters, total=total, page=min(page_number, pages),
                           pages=pages, page_url=lambda n: url_for("appointments.index", **params, page=n))


@appointment_pages.route("/appointments/new", methods=["GET", "POST"])
def add():
    if request.method == "GET":
        default_zone = getattr(current_app.extensions["review"].tz, "key", None) or "UTC"
        return _render_form({"procedure": "lumbar", "time_zone": default_zone, "consent": ""}, {})
    values = _form_values(request.form)
    try:
        booked = _store().add(_check(values), g.user.username)
    except ap.AppointmentError as error:
        return _render_form(values, error.problems, status=400)
    except DataFileError as error:
        return _schedule_problem(error)
    _record("appointment_add", booked.phone, f"appointment {booked.id}")
    flash(f"Appointment {booked.id} added." + ("" if booked.consent else " No texts: the patient has not agreed."),
          "info")
    return redirect(url_for("appointments.show", appointment_id=booked.id))


@appointment_pages.get("/appointments/<int:appointment_id>")
def show(appointment_id: int):
    appointment = _load(appointment_id)
    outbox = _outbox()
    messages = outbox.messages_for_appointment(appointment.id, url=_url()) if outbox else None
    _record("view_appointment", appointment.phone, f"appointment {appointment.id}")
    return render_template("appointment.html", a=appointment, messages=messages, conversation_ref=_ref(appointment),
                           opted_out=_opted_out(appointment.phone), status_labels=MESSAGE_STATUS_LABELS,
                           reason_labels=REASON_LABELS)


@appointment_pages.route("/appointments/<int:appointment_id>/edit", methods=["GET", "POST"])
def edit(appointment_id: int):
    appointment = _load(appointment_id)
    if not appointment.active:
        flash("A cancelled appointment cannot be changed. Add a new one instead.", "warning")
        return redirect(url_for("appointments.show", appointment_id=appointment.id))
    if request.method == "GET":
        return _render_form(_values_of(appointment), {}, appointment)
    values = _form_values(request.form)
    if (request.form.get("stamp") or "") != _stamp(appointment):
        flash("Someone changed this appointment while you were editing it. Check it and try again.", "warning")
        return redirect(url_for("appointments.show", appointment_id=appointment.id))
    try:
        changed = _store().update(appointment.id, _check(values, appointment), g.user.username)
    except ap.AppointmentError as error:
        return _render_form(values, error.problems, appointment, status=400)
    except DataFileError as error:
        return _schedule_problem(error)
    moved = changed.version != appointment.version
    _record("appointment_update", changed.phone, f"appointment {changed.id}" + (
        f"; moved to {changed.local_start:%Y-%m-%d %H:%M} {changed.time_zone} (version {changed.version})" if moved
        else ""))
    flash(f"Appointment {changed.id} saved." + (" Its texts were moved to the new time." if moved else ""), "info")
    return redirect(url_for("appointments.show", appointment_id=changed.id))


@appointment_pages.post("/appointments/<int:appointment_id>/cancel")
def cancel(appointment_id: int):
    appointment = _load(appointment_id)
    if request.form.get("confirm") != "1":
        flash("To cancel, tick the confirmation box.", "warning")
        return redirect(url_for("appointments.show", appointment_id=appointment.id))
    if not appointment.active:
        flash(f"Appointment {appointment.id} was already cancelled.", "info")
        return redirect(url_for("appointments.show", appointment_id=appointment.id))
    try:
        cancelled = _store().cancel(appointment.id, g.user.username)
    except DataFileError as error:
        return _schedule_problem(error)
    _record("appointment_cancel", cancelled.phone, f"appointment {cancelled.id}")
    flash(f"Appointment {cancelled.id} cancelled. Its waiting texts will not be sent.", "info")
    return redirect(url_for("appointments.show", appointment_id=cancelled.id))


@appointment_pages.route("/appointments/import", methods=["GET", "POST"])
def import_csv():
    if request.method == "GET":
        return render_template("appointments_import.html", report=None, columns=ap.CSV_COLUMNS)
    upload = request.files.get("file")
    text = ""
    if upload is not None and upload.filename:
        try:
            text = upload.read().decode("utf-8-sig")
        except UnicodeDecodeError:
            flash("The file is not UTF-8 text. Save it from your spreadsheet as \"CSV UTF-8\" and try again.", "error")
            return render_template("appointments_import.html", report=None, columns=ap.CSV_COLUMNS), 400
    else:
        text = request.form.get("text") or ""
    if not text.strip():
        flash("Choose a CSV file (or paste its text) to import.", "warning")
        return render_template("appointments_import.html", report=None, columns=ap.CSV_COLUMNS), 400
    try:
        report = _store().import_csv(text, g.user.username)
    except DataFileError as error:
        return _schedule_problem(error)
    if not report.ok:
        return render_template("appointments_import.html", report=report, columns=ap.CSV_COLUMNS), 400
    _record("appointment_import", detail=f"{len(report.added)} added, {len(report.duplicates)} already booked"
            + (f"; appointments {report.added[0]}-{report.added[-1]}" if report.added else ""))
    flash(f"Imported {len(report.added)} appointment(s)."
          + (f" {len(report.duplicates)} row(s) were already booked and were skipped." if report.duplicates else ""),
          "info")
    return redirect(url_for("appointments.index"))


@appointment_pages.get("/appointments/no-reply")
def no_reply():
    outbox = _outbox()
    now = time.time()
    items = outbox.unanswered_checkins(now, url=_url(), tracker_url=config.tracker_db_url()) if outbox else None
    window_h = None
    try:
        from bot.outreach.schedule import schedule

        window_h = schedule().checkin_no_reply.total_seconds() / 3600
    except DataFileError as error:
        logger.error("Outreach schedule cannot be read: %s", error)
    _record("view_no_reply", detail=f"{len(items or [])} unanswered")
    refs = {item.phone: _ctx_ref(item.phone) for item in items or []}
    return render_template("appointments_no_reply.html", items=items, window_h=window_h, refs=refs, now=now)


@appointment_pages.errorhandler(413)
def too_large(error):
    return render_template("error.html", title="File too large",
                           message="A file imported here may be up to 64 kB (about 1,000 rows). Split it, or import "
                                   "it with: python -m bot.outreach import FILE"), 413


# --- helpers -------------------------------------------------------------------------------------------
def _url() -> str:
    return current_app.extensions["appointments_url"]


def _stamp(appointment: ap.Appointment) -> str:
    return f"{appointment.version}:{appointment.updated_at:.6f}"


def _opted_out(phone: str) -> bool | None:
    """Whether the patient texted STOP (the SMS channel's record, as the outreach worker reads it); None: unknown."""
    try:
        reader = current_app.extensions.get("sms_opt_outs")
        if reader is None:
            from bot.outreach.worker import OptOutReader

            reader = current_app.extensions["sms_opt_outs"] = OptOutReader(config.sms_state_db_url())
        return reader.is_opted_out(phone)
    except Exception:  # noqa: BLE001 - the page shows without it when the record cannot be read
        logger.exception("SMS opt-out record unreadable")
        return None


def _ctx_ref(phone: str) -> int | None:
    try:
        return current_app.extensions["review"].store.ref_for_sender(phone)
    except Exception:  # noqa: BLE001 - the page shows without the link when conversations cannot be read
        return None


def _ref(appointment: ap.Appointment) -> int | None:
    return _ctx_ref(appointment.phone)


def _in_zone(value: float | datetime | None, zone: str, fmt: str = "%a %Y-%m-%d %H:%M %Z") -> str:
    """A time on the patient's clock (their zone's abbreviation shown)."""
    if value is None:
        return ""
    if isinstance(value, (int, float)):
        value = datetime.fromtimestamp(value, tz=timezone.utc)
    return value.astimezone(ZoneInfo(zone)).strftime(fmt)


def _text_label(key: str) -> str:
    """A schedule key as staff read it: checkin_next_day -> "Check-in next day"."""
    return key.replace("_", " ").capitalize().replace("Checkin", "Check-in").replace("checkin", "check-in")


def _waiting(seconds: float) -> str:
    hours = int(seconds // 3600)
    return f"{hours // 24} d {hours % 24} h" if hours >= 24 else f"{hours} h"


def register(app: Flask, url: str | None = None) -> None:
    """Add the appointment pages to the review app (appointments in `url`, else OUTREACH_DB_URL)."""
    url = url or config.outreach_db_url()
    _outbox()  # first: registers the outbox's table and change hook (texts move and cancel with their appointment)
    app.extensions["appointments_url"] = url
    app.extensions["appointments"] = ap.AppointmentStore(url)
    app.register_blueprint(appointment_pages)
    app.jinja_env.filters["in_zone"] = _in_zone
    app.jinja_env.filters["waiting"] = _waiting
    app.jinja_env.filters["text_label"] = _text_label
    app.jinja_env.globals["appointment_stamp"] = _stamp
    counted: dict[str, Any] = {"at": 0.0, "value": None}

    @app.context_processor
    def no_reply_badge() -> dict[str, Any]:
        """The number of unanswered check-ins, on every page (counted at most every NO_REPLY_TTL_S)."""
        if g.get("user") is None:
            return {"no_reply_count": None}
        now = time.time()
        if now - counted["at"] > NO_REPLY_TTL_S:
            outbox = _outbox()
            try:
                value = len(outbox.unanswered_checkins(now, url=url, tracker_url=config.tracker_db_url())) \
                    if outbox else None
            except Exception:  # noqa: BLE001 - a page must render even when the count cannot be read
                logger.exception("Unanswered check-ins cannot be counted")
                value = None
            counted.update(at=now, value=value)
        return {"no_reply_count": counted["value"]}
