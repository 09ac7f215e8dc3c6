"""`python -m bot.review COMMAND`: the staff review tools on the command line.

  serve [--host H] [--port P]                 the web app under waitress (default 127.0.0.1:$REVIEW_PORT or 8081)
  create-user USERNAME [--reset-password]     staff account; password prompted twice or from REVIEW_NEW_PASSWORD
  list [filters] [--page N] [--per-page N]    conversations, most recently active first
  show SENDER_OR_REF [--unmask]               one transcript (SENDER: the sender id; REF: the number in the list)
  export --format csv|json [filters] [--conversation SENDER_OR_REF] [--unmask] [--output FILE]
  purge --older-than-days N [--yes]           retention: dry run unless --yes
  access-log [--user U] [--limit N]           who viewed or exported what
  export-training [--nlu-file F] [--cases-dir D]   staff-labelled messages as NLU examples + regression cases
  follow-up [--level L] [--channel C] [--state S] [--from D] [--to D]   the "Needs follow-up" queue

Filters: --from YYYY-MM-DD --to YYYY-MM-DD --channel web|sms|rest --escalated any|emergency|urgent|check
         --unanswered --search TEXT
Every view/export from the CLI is recorded in the access log as `cli:<os user>`.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from datetime import datetime

from bot import config
from bot.review import accesslog, auth
from bot.review.db import StoreUnavailable, review_engine, tracker_engine
from bot.review.filters import CHANNELS, ESCALATED_CHOICES, Filters
from bot.review.masking import mask_sender, shown_sender, shown_text
from bot.review.service import EXPORT_FORMATS, ReviewService
from bot.review.store import ConversationStore


def _cli_user() -> str:
    try:
        name = getpass.getuser()
    except Exception:  # noqa: BLE001
        name = str(os.getuid())
    return f"cli:{name}"


def _review_db():
    return review_engine(config.review_db_url())


def _service() -> ReviewService:
    """The staff actions, recorded in the access log as `cli:<os user>`."""
    store = ConversationStore(tracker_engine(config.tracker_db_url()), config.review_timezone())
    return ReviewService(store, _review_db(), _cli_user())


def _filters(args: argparse.Namespace) -> Filters:
    values = {
        "from": args.date_from or "",
        "to": args.date_to or "",
        "channel": args.channel or "",
        "escalated": args.escalated or "",
        "unanswered": "1" if args.unanswered else "",
        "q": args.search or "",
    }
    filters, problems = Filters.parse(values)
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    return filters


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD", help="active on or after this day")
    parser.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD", help="started on or before this day")
    parser.add_argument("--channel", choices=sorted(CHANNELS), help="web (socket.io), sms or rest")
    parser.add_argument("--escalated", choices=ESCALATED_CHOICES, help="only escalated conversations")
    parser.add_argument("--unanswered", action="store_true", help="only conversations with unanswered questions")
    parser.add_argument("--search", metavar="TEXT", help="text in patient messages")


def _resolve(store: ConversationStore, key: str) -> str | None:
    """A sender id, or the conversation number shown in the list."""
    if store.ref_for_sender(key) is not None:
        return key
    if key.isdigit():
        return store.sender_for_ref(int(key))
    return None


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


SERVE_THREADS = 8


def cmd_serve(args: argparse.Namespace) -> int:
    """The web app under waitress, a production WSGI server (pure Python, no compiler, works on any OS)."""
    import logging

    from waitress import serve

    from bot.review.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app()
    print(f"Staff review app on http://{args.host}:{args.port}/ (waitress, {SERVE_THREADS} threads; "
          f"cookies Secure={app.config['SESSION_COOKIE_SECURE']})", flush=True)
    # ident="": no Server header naming the software; X-Forwarded-* are honoured by the app itself
    # (REVIEW_TRUST_PROXY), so waitress leaves them alone.
    serve(app, host=args.host, port=args.port, threads=SERVE_THREADS, ident="", channel_timeout=60,
          max_request_body_size=1024 * 1024)
    return 0


def cmd_create_user(args: argparse.Namespace) -> int:
    password = config.review_new_password()
    if password is None:
        if not sys.stdin.isatty():
            print("error: no terminal to ask for the password; set REVIEW_NEW_PASSWORD", file=sys.stderr)
            return 2
        password = getpass.getpass(f"Password for {args.username} (at least {auth.MIN_PASSWORD_LENGTH} characters): ")
        again = getpass.getpass("Same password again: ")
        if password != again:
            print("error: the passwords do not match", file=sys.stderr)
            return 1
    try:
        user = auth.create_user(_review_db(), args.username, password, replace=args.reset_password)
    except auth.AccountError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{'Password set for' if args.reset_password else 'Created'} staff user {user.username!r}.")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    filters = _filters(args)
    page = _service().list_conversations(filters, args.page, args.per_page)
    if not page.rows:
        print("No conversations match.")
        return 0
    rows = [["REF", "STARTED", "LAST ACTIVITY", "CHANNEL", "PATIENT", "TURNS", "ESCALATION", "UNANSWERED"]]
    for row in page.rows:
        rows.append([str(row.ref), row.started.strftime("%Y-%m-%d %H:%M"), row.last_activity.strftime("%Y-%m-%d %H:%M"),
                     row.channel_label, mask_sender(row.sender_id), str(row.patient_turns),
                     (row.escalation or "-").upper() if row.escalation else "-", str(row.unanswered or "-")])
    print(_table(rows))
    print(f"\nPage {page.page} of {page.pages} ({page.total} conversations; {filters.describe()})")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    service = _service()
    sender = _resolve(service.store, args.conversation)
    transcript = service.store.transcript(sender) if sender else None
    if transcript is None:
        print(f"error: no conversation {args.conversation!r}", file=sys.stderr)
        return 1
    service.view_transcript(transcript, args.unmask)
    print(f"Conversation {transcript.ref} with {shown_sender(transcript.sender_id, args.unmask)} "
          f"({transcript.channel_label}), {transcript.patient_turns} patient messages"
          + (f", ESCALATED: {transcript.escalation.upper()}" if transcript.escalation else ""))
    for turn in transcript.turns:
        when = turn.at.strftime("%Y-%m-%d %H:%M:%S") if turn.at else ""
        if turn.kind == "session":
            print(f"\n--- new session {when} ---")
            continue
        if turn.kind == "takeover":
            print(f"\n--- {turn.note} {when} ---")
            continue
        flags = []
        if turn.escalation:
            flags.append(f"!! {turn.escalation.upper()}")
        if turn.unanswered:
            flags.append("UNANSWERED")
        who = {"patient": "PATIENT", "staff": "STAFF  "}.get(turn.kind, "BOT    ")
        print(f"\n[{when}] {who} {' '.join(flags)}".rstrip())
        text = shown_text(turn.text, args.unmask) if turn.kind == "patient" else turn.text
        print("  " + text.replace("\n", "\n  "))
        if turn.kind == "patient":
            meta = f"  intent: {turn.intent or '-'}"
            if turn.confidence is not None:
                meta += f" ({turn.confidence:.2f})"
            if turn.topic:
                meta += f"; answered from: {turn.topic}"
            if turn.symptoms:
                meta += f"; symptoms: {', '.join(turn.symptoms)}"
            print(meta)
        elif turn.note:
            print(f"  ({turn.note})")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    service = _service()
    if args.conversation:
        sender = _resolve(service.store, args.conversation)
        transcript = service.store.transcript(sender) if sender else None
        if transcript is None:
            print(f"error: no conversation {args.conversation!r}", file=sys.stderr)
            return 1
        body = service.export_transcript(transcript, args.format, args.unmask).body
    else:
        body = service.export_list(_filters(args), args.format, args.unmask).body
    if args.output and args.output != "-":
        fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(body)
        print(f"Wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(body)
        if not body.endswith("\n"):
            sys.stdout.write("\n")
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    from bot.review.purge import execute_purge, plan_purge, purge_staff_records

    engine = tracker_engine(config.tracker_db_url(), writable=True)
    try:
        plan = plan_purge(engine, args.older_than_days)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    cutoff = datetime.fromtimestamp(plan.cutoff, config.review_timezone()).strftime("%Y-%m-%d %H:%M %Z")
    if not plan.events:
        print(f"Nothing to delete: no conversation has sessions that ended before {cutoff}.")
        return 0
    verb = "Deleting" if args.yes else "Would delete"
    print(f"{verb} {plan.events} events from {plan.conversations} conversations whose messages are older than "
          f"{args.older_than_days:g} days (before {cutoff}):")
    print(f"  {len(plan.whole)} conversations entirely, {len(plan.partial)} only their old sessions")
    listed = [(sender, count, "entire conversation") for sender, count in plan.whole.items()]
    listed += [(sender, len(ids), "old sessions") for sender, ids in plan.partial.items()]
    for sender, count, what in listed[:args.show]:
        print(f"  {mask_sender(sender):<26} {count:>6} events  ({what})")
    if len(listed) > args.show:
        print(f"  ... and {len(listed) - args.show} more")
    if not args.yes:
        print("Dry run: nothing was deleted. Run again with --yes to delete.")
        return 0
    deleted = execute_purge(engine, plan)
    from bot.alerts.store import purge_alerts  # escalation alerts of those conversations (bot/alerts)

    alerts = purge_alerts([*plan.whole, *plan.partial], plan.cutoff)
    staff_records = purge_staff_records(_review_db(), plan)
    _service().record("purge", detail=f"older than {args.older_than_days:g} days; {deleted} events from "
                                      f"{plan.conversations} conversations")
    extra = [f"{alerts} escalation alerts"] * bool(alerts) + [f"{staff_records} follow-up actions and labels"] * bool(
        staff_records)
    print(f"Deleted {deleted} events" + (f" and {' and '.join(extra)}." if extra else "."))
    return 0


def cmd_access_log(args: argparse.Namespace) -> int:
    entries, total = accesslog.read(_review_db(), args.limit, 0, args.user.lower() if args.user else None)
    if not entries:
        print("The access log is empty.")
        return 0
    tz = config.review_timezone()
    rows = [["WHEN", "STAFF", "ACTION", "PATIENT", "DETAIL", "FROM"]]
    for entry in entries:
        rows.append([datetime.fromtimestamp(entry.at, tz).strftime("%Y-%m-%d %H:%M:%S"), entry.username, entry.action,
                     mask_sender(entry.sender_id) or "-", entry.detail, entry.ip or "-"])
    print(_table(rows))
    print(f"\n{len(entries)} of {total} entries, newest first.")
    return 0


def cmd_export_training(args: argparse.Namespace) -> int:
    """Labels not yet exported -> a data/nlu/ file for a developer to review, and cases for the frozen sets."""
    from pathlib import Path

    from bot.review import labels

    service = _service()
    result = labels.export_training(service.store, service.review_db, service.staff, Path(args.nlu_file),
                                    Path(args.cases_dir))
    for event_id, why in result.skipped:
        print(f"skipped message {event_id}: {why}", file=sys.stderr)
    if not result.exported:
        print("Nothing new to export." if not result.skipped else "Nothing exported.")
        return 0
    for intent, texts in sorted(result.examples.items()):
        print(f"{intent}: {len(texts)} new example{'s' if len(texts) != 1 else ''}")
    print(f"Wrote {result.exported} examples to {args.nlu_file} and {len(result.questions)} + "
          f"{len(result.out_of_scope)} regression cases to {args.cases_dir}/ (questions.jsonl, out_of_scope.jsonl).")
    print("Review them (remove anything personal), then retrain with `make model` and commit.")
    return 0


def cmd_follow_up(args: argparse.Namespace) -> int:
    """The follow-up queue as staff see it on the landing page (most severe first, then newest)."""
    from bot.review import followup
    from bot.review.filters import BadParameter

    service = _service()
    values = {"level": args.level or "", "channel": args.channel or "", "state": args.state or "",
              "from": args.date_from or "", "to": args.date_to or ""}
    try:
        filters = followup.QueueFilters.parse(values)
    except BadParameter as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    queue = followup.read_queue(service.store, service.review_db, filters, 1, args.limit)
    service.record("view_followup", detail=f"{filters.describe()}; cli")
    counts = queue.counts
    summary = f"{counts['open']} open, {counts['acknowledged']} acknowledged, {counts['resolved']} resolved"
    if not queue.items:
        print(f"Nothing needs follow-up ({filters.describe()}; {summary}).")
        return 0
    rows = [["REF", "LEVEL", "WHEN", "CHANNEL", "PATIENT", "STATE", "BY", "ALERT"]]
    for item in queue.items:
        who = item.last("resolve" if item.state == "resolved" else "acknowledge")
        rows.append([str(item.ref), item.level.upper(), item.trigger_at.strftime("%Y-%m-%d %H:%M"), item.channel_label,
                     mask_sender(item.sender_id), item.state, who.username if who and item.state != "open" else "-",
                     item.alert_status or "-"])
    print(_table(rows))
    print(f"\n{len(queue.items)} of {queue.total} ({filters.describe()}); queue: {summary}.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot.review", description="Staff review of patient conversations.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the web app")
    serve.add_argument("--host", default=config.review_host())
    serve.add_argument("--port", type=int, default=config.review_port())
    serve.set_defaults(func=cmd_serve)

    create = commands.add_parser("create-user", help="create a staff account")
    create.add_argument("username")
    create.add_argument("--reset-password", action="store_true", help="set a new password for an existing user")
    create.set_defaults(func=cmd_create_user)

    listing = commands.add_parser("list", help="list conversations")
    _add_filters(listing)
    listing.add_argument("--page", type=int, default=1)
    listing.add_argument("--per-page", type=int, default=50)
    listing.set_defaults(func=cmd_list)

    show = commands.add_parser("show", help="print one transcript")
    show.add_argument("conversation", metavar="SENDER", help="sender id, or the REF number from `list`")
    show.add_argument("--unmask", action="store_true", help="show the full phone number (recorded in the access log)")
    show.set_defaults(func=cmd_show)

    export = commands.add_parser("export", help="export the filtered list or one transcript")
    export.add_argument("--format", choices=EXPORT_FORMATS, required=True)
    _add_filters(export)
    export.add_argument("--conversation", metavar="SENDER", help="export this transcript instead of the list")
    export.add_argument("--unmask", action="store_true", help="full phone numbers (recorded in the access log)")
    export.add_argument("--output", "-o", metavar="FILE", help="write here (created 0600) instead of stdout")
    export.set_defaults(func=cmd_export)

    purge = commands.add_parser("purge", help="delete old conversations (dry run unless --yes)")
    purge.add_argument("--older-than-days", type=float, required=True, metavar="N")
    purge.add_argument("--yes", action="store_true", help="really delete")
    purge.add_argument("--show", type=int, default=20, help="how many conversations to list")
    purge.set_defaults(func=cmd_purge)

    log = commands.add_parser("access-log", help="who viewed or exported what")
    log.add_argument("--user")
    log.add_argument("--limit", type=int, default=100)
    log.set_defaults(func=cmd_access_log)

    from bot.review.labels import CASES_DIR, NLU_FILE

    training = commands.add_parser("export-training", help="labelled messages as Rasa NLU examples and test cases")
    training.add_argument("--nlu-file", default=str(NLU_FILE), help="NLU file to add to (default: %(default)s)")
    training.add_argument("--cases-dir", default=str(CASES_DIR), help="regression cases folder (default: %(default)s)")
    training.set_defaults(func=cmd_export_training)

    from bot.review.followup import REASONS, STATE_CHOICES

    queue = commands.add_parser("follow-up", help="the Needs follow-up queue")
    queue.add_argument("--level", choices=REASONS)
    queue.add_argument("--channel", choices=sorted(CHANNELS))
    queue.add_argument("--state", choices=STATE_CHOICES, help="default: unresolved (open and acknowledged)")
    queue.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD")
    queue.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD")
    queue.add_argument("--limit", type=int, default=100)
    queue.set_defaults(func=cmd_follow_up)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except StoreUnavailable as error:
        print(f"error: cannot read the conversation store: {error}", file=sys.stderr)
        return 3
