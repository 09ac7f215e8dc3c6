"""Web pages of the follow-up queue and of labelling messages (Flask blueprints of the review app).

The app's own guards apply to them unchanged: login (before_request), CSRF on every POST (CSRFProtect),
autoescaped templates, the 400/404 error pages. Every view and action is recorded in the access log.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Flask, current_app, flash, g, redirect, render_template, request, url_for

from bot.review import followup
from bot.review.filters import CHANNEL_LABELS, CHANNELS, BadParameter, parse_page

MAX_REF = 2**63 - 1
PER_PAGE = 50

queue_pages = Blueprint("followup", __name__)


def _ctx():
    return current_app.extensions["review"]


def _ip() -> str:
    return request.remote_addr or "unknown"


def _open_count() -> int:
    return current_app.extensions["followup_open"].get(_ctx().store, _ctx().review_db)


@queue_pages.get("/follow-up")
def queue():
    filters = followup.QueueFilters.parse(request.args)
    page_number = parse_page(request.args.get("page"))
    result = followup.read_queue(_ctx().store, _ctx().review_db, filters, page_number, PER_PAGE)
    current_app.extensions["followup_open"].prime(result.counts["open"])
    followup.accesslog.record(_ctx().review_db, g.user.username, "view_followup",
                              detail=f"{filters.describe()}; page {page_number}", ip=_ip())
    params = filters.as_params()
    query = urlencode({**params, **({"page": str(page_number)} if page_number > 1 else {})})
    return render_template(
        "followup.html", queue=result, filters=filters, params=params, query=query,
        channels=[(key, CHANNEL_LABELS[value]) for key, value in CHANNELS.items()],
        reason_labels=followup.REASON_LABELS, state_labels=followup.STATE_LABELS, alert_labels=followup.ALERT_LABELS,
        page_url=lambda n: url_for("followup.queue", **params, page=n),
        max_note=followup.MAX_NOTE_CHARS,
    )


@queue_pages.post("/follow-up/<int:ref>")
def act(ref: int):
    form = request.form
    back = form.get("back", "")
    target = url_for("followup.queue") + ("?" + back if back and _safe_query(back) else "")
    if not 0 < ref <= MAX_REF:
        return _not_found()
    sender = _ctx().store.sender_for_ref(ref)
    if sender is None:
        return _not_found()
    action = (form.get("action") or "").strip().lower()
    raw_trigger = (form.get("trigger") or "").strip()
    if raw_trigger and (not raw_trigger.isascii() or not raw_trigger.isdigit() or len(raw_trigger) > 19):
        raise BadParameter(["The follow-up item does not match this conversation."])
    try:
        item, newer = followup.act(_ctx().store, _ctx().review_db, g.user.username, sender, action,
                                   int(raw_trigger) if raw_trigger else None, form.get("note") or "", _ip())
    except followup.ActionRefused as refused:
        flash(str(refused), "warning")
        return redirect(target)
    current_app.extensions["followup_open"].invalidate()
    done = {"acknowledge": "acknowledged", "resolve": "resolved", "reopen": "reopened", "note": "noted"}[action]
    message = f"Conversation {item.ref} {done}." if action != "note" else f"Note added to conversation {item.ref}."
    if newer:
        message += " It has newer activity since the page was loaded, so it stays in the queue as open."
    flash(message, "info")
    return redirect(target)


def _not_found():
    from flask import abort

    abort(404)


def _safe_query(query: str) -> bool:
    return len(query) < 1000 and "\n" not in query and "\r" not in query and not query.startswith("/")


def register(app: Flask) -> None:
    """Add the follow-up queue (and the learning pages) to the review app, with the open count on every page."""
    from bot.review import label_views

    app.extensions["followup_open"] = followup.OpenCount()
    app.register_blueprint(queue_pages)
    app.register_blueprint(label_views.learning_pages)

    def followup_for(sender_id: str) -> followup.QueueItem | None:
        """The transcript page's follow-up state and alert status of its conversation."""
        try:
            return followup.find_item(_ctx().store, _ctx().review_db, sender_id, alerts=True)
        except Exception:  # noqa: BLE001 - the transcript must show even when this cannot be read
            return None

    app.jinja_env.globals.update(followup_for=followup_for, followup_alert_labels=followup.ALERT_LABELS,
                                 followup_state_labels=followup.STATE_LABELS)

    @app.context_processor
    def followup_globals() -> dict[str, Any]:
        if g.get("user") is None:
            return {"followup_open": None}
        try:
            return {"followup_open": _open_count()}
        except Exception:  # noqa: BLE001 - a page must render even when the store cannot be read for the badge
            return {"followup_open": None}
