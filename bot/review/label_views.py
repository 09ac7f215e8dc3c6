"""The learning pages: staff label unanswered or unsure patient messages with the right topic.

Guards as every review page (login, CSRF, autoescape, access log); see bot/review/labels.py for what a
label is and how `python -m bot.review export-training` turns labels into training data.
"""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, url_for

from bot.review import accesslog, labels
from bot.review.filters import BadParameter, parse_day, parse_page

MAX_REF = 2**63 - 1
PER_PAGE = 50

learning_pages = Blueprint("learning", __name__)


def _ctx():
    return current_app.extensions["review"]


def _choice(raw: str | None, choices: tuple[str, ...], default: str, label: str) -> str:
    value = (raw or "").strip().lower() or default
    if value not in choices:
        raise BadParameter([f"{label} must be one of {', '.join(choices)}."])
    return value


@learning_pages.get("/learning")
def messages():
    args = request.args
    kind = _choice(args.get("kind"), labels.KINDS, "unanswered", "Kind")
    state = _choice(args.get("state"), labels.LABEL_STATES, "unlabelled", "State")
    date_from, date_to = parse_day(args.get("from"), "From date"), parse_day(args.get("to"), "To date")
    if date_from and date_to and date_from > date_to:
        date_from, date_to = date_to, date_from
    page_number = parse_page(args.get("page"))
    result = labels.list_messages(_ctx().store, _ctx().review_db, kind, state, date_from, date_to, page_number,
                                  PER_PAGE)
    params = {key: value for key, value in (("kind", kind if kind != "unanswered" else ""),
                                            ("state", state if state != "unlabelled" else ""),
                                            ("from", date_from.isoformat() if date_from else ""),
                                            ("to", date_to.isoformat() if date_to else "")) if value}
    accesslog.record(_ctx().review_db, g.user.username, "view_learning",
                     detail=f"{', '.join(f'{k}={v}' for k, v in params.items()) or 'unlabelled'}; page {page_number}",
                     ip=request.remote_addr)
    return render_template("labels.html", result=result, kind=kind, state=state, date_from=date_from,
                           date_to=date_to, params=params, topics=labels.topic_choices(),
                           kinds=labels.KIND_LABELS, query=urlencode(params),
                           page_url=lambda n: url_for("learning.messages", **params, page=n))


@learning_pages.route("/learning/message/<int:event_id>", methods=["GET", "POST"])
def message(event_id: int):
    if not 0 < event_id <= MAX_REF:
        abort(404)
    if request.method == "POST":
        topic = (request.form.get("topic") or "").strip()
        try:
            saved = labels.save_label(_ctx().store, _ctx().review_db, g.user.username, event_id, topic,
                                      request.remote_addr)
        except LookupError:
            abort(404)
        except labels.LabelRefused as refused:
            flash(str(refused), "warning")
        else:
            flash(f"Labelled as “{saved.label.topic_name}”.", "info")  # type: ignore[union-attr]
        back = request.form.get("back", "")
        if request.form.get("return") == "list":
            safe = back if len(back) < 1000 and not any(c in back for c in "\r\n/") else ""
            return redirect(url_for("learning.messages") + ("?" + safe if safe else ""))
        return redirect(url_for("learning.message", event_id=event_id))
    found = labels.read_message(_ctx().store, _ctx().review_db, event_id)
    if found is None:
        abort(404)
    accesslog.record(_ctx().review_db, g.user.username, "view_learning", found.sender_id,
                     f"message {event_id}", request.remote_addr)
    return render_template("label_message.html", m=found, topics=labels.topic_choices())
