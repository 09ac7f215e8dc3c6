"""`python -m bot.outreach COMMAND`: appointments for reminder and check-in texts, on the command line.

  add --phone P --procedure lumbar|cervical --date YYYY-MM-DD --time HH:MM --time-zone ZONE --consent yes|no
  import FILE                 a CSV file (columns phone, procedure, date, time, time_zone, consent): all rows or none
  list [--status active|cancelled|all] [--when upcoming|past|all] [--unmask]
  show ID                     one appointment and every text planned or sent for it
  change ID [--phone P] [--procedure ...] [--date ...] [--time ...] [--time-zone ...] [--consent yes|no]
  cancel ID                   its waiting texts are cancelled with it
  no-reply                    check-ins nobody answered within the schedule's window (call these patients)
  check-schedule [FILE]       read knowledge/outreach_schedule.yml (or FILE) and print when each text goes out

Appointments live in OUTREACH_DB_URL. Every change and view is written to the review access log as
`cli:<os user>`, like the review CLI. Exit status: 0 done, 1 refused (bad values, a bad CSV row), 2 usage.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone

from bot import config
from bot.datafile import DataFileError
from bot.outreach import appointments as ap


def _access(action: str, sender_id: str | None = None, detail: str = "") -> None:
    """The review access log, as the review CLI writes it (labels: bot.review.appointment_views)."""
    from bot.review import accesslog
    from bot.review.cli import _cli_user
    from bot.review.db import review_engine

    accesslog.record(review_engine(config.review_db_url()), _cli_user(), action, sender_id, detail)


def _store() -> ap.AppointmentStore:
    _outbox()  # first: its table and change hook (texts move and cancel with their appointment)
    return ap.AppointmentStore()


def _outbox():
    try:
        from bot.outreach import outbox
    except ImportError:
        return None
    return outbox


def _user() -> str:
    from bot.review.cli import _cli_user

    return _cli_user()


def _when(appointment: ap.Appointment) -> str:
    return appointment.local_start.strftime("%Y-%m-%d %H:%M %Z")


def _problems(error: ap.AppointmentError) -> int:
    for name, problem in error.problems.items():
        print(f"error: {name.replace('_', ' ')} {problem}", file=sys.stderr)
    return 1


def _print(appointment: ap.Appointment, unmask: bool = True) -> None:
    from bot.privacy import mask_sender

    phone = appointment.phone if unmask else mask_sender(appointment.phone)
    print(f"appointment {appointment.id}: {_when(appointment)} ({appointment.time_zone}), {appointment.procedure}, "
          f"{phone}, texts {'agreed' if appointment.consent else 'NOT agreed'}, {appointment.status}, "
          f"version {appointment.version}")


def cmd_add(args: argparse.Namespace) -> int:
    try:
        values = ap.check_values(args.phone, args.procedure, args.date, args.time, args.time_zone, args.consent)
        booked = _store().add(values, _user())
    except ap.AppointmentError as error:
        return _problems(error)
    _access("appointment_add", booked.phone, f"appointment {booked.id}")
    _print(booked)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    try:
        with open(args.file, encoding="utf-8-sig", newline="") as handle:
            text = handle.read()
    except UnicodeDecodeError:
        print(f"error: {args.file} is not UTF-8 text (save it as \"CSV UTF-8\")", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"error: cannot read {args.file}: {error.strerror}", file=sys.stderr)
        return 1
    report = _store().import_csv(text, _user())
    if not report.ok:
        for problem in report.errors:
            print(f"{args.file}: {problem}", file=sys.stderr)
        print(f"Nothing imported: {len(report.errors)} problem(s).", file=sys.stderr)
        return 1
    _access("appointment_import", detail=f"{len(report.added)} added, {len(report.duplicates)} already booked (CLI)")
    print(f"Imported {len(report.added)} appointment(s); {len(report.duplicates)} already booked, skipped.")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    now = time.time()
    store = _store()
    rows = store.list_appointments(status=None if args.status == "all" else args.status,
                                   since=now if args.when == "upcoming" else None,
                                   until=now if args.when == "past" else None, limit=args.limit)
    _access("view_appointments", detail=f"CLI list status={args.status} when={args.when}"
            + ("; full numbers" if args.unmask else ""))
    if not rows:
        print("No appointments match.")
        return 0
    for appointment in rows:
        _print(appointment, unmask=args.unmask)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    try:
        appointment = _store().get(args.id)
    except ap.NotFound:
        print(f"error: no appointment {args.id}", file=sys.stderr)
        return 1
    _access("view_appointment", appointment.phone, f"appointment {appointment.id} (CLI)")
    _print(appointment)
    outbox = _outbox()
    if outbox is None:
        return 0
    for message in outbox.messages_for_appointment(appointment.id):
        due = datetime.fromtimestamp(message.due_at, timezone.utc).astimezone(appointment.zone)
        note = f" ({message.reason})" if message.reason else ""
        old = "" if message.appointment_version == appointment.version else f" [version {message.appointment_version}]"
        print(f"  {message.message_key:<18} {due:%Y-%m-%d %H:%M %Z}  {message.status}{note}{old}")
    return 0


def cmd_change(args: argparse.Namespace) -> int:
    store = _store()
    try:
        current = store.get(args.id)
    except ap.NotFound:
        print(f"error: no appointment {args.id}", file=sys.stderr)
        return 1
    local = current.local_start
    try:
        values = ap.check_values(args.phone or current.phone, args.procedure or current.procedure,
                                 args.date or local.date().isoformat(), args.time or local.strftime("%H:%M"),
                                 args.time_zone or current.time_zone,
                                 args.consent if args.consent else ("yes" if current.consent else "no"),
                                 past_start=current.starts_at)
        changed = store.update(current.id, values, _user())
    except ap.AppointmentError as error:
        return _problems(error)
    _access("appointment_update", changed.phone, f"appointment {changed.id} (CLI), version {changed.version}")
    _print(changed)
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    try:
        cancelled = _store().cancel(args.id, _user())
    except ap.NotFound:
        print(f"error: no appointment {args.id}", file=sys.stderr)
        return 1
    _access("appointment_cancel", cancelled.phone, f"appointment {cancelled.id} (CLI)")
    _print(cancelled)
    return 0


def cmd_no_reply(args: argparse.Namespace) -> int:
    outbox = _outbox()
    if outbox is None:
        print("error: the outreach outbox is not installed", file=sys.stderr)
        return 1
    items = outbox.unanswered_checkins()
    _access("view_no_reply", detail=f"{len(items)} unanswered (CLI)")
    if not items:
        print("Every check-in has been answered.")
        return 0
    for item in items:
        sent = datetime.fromtimestamp(item.sent_at, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        print(f"{item.phone}  {item.procedure:<8}  check-in sent {sent}, {item.waiting_s / 3600:.0f} h ago, "
              f"appointment {item.appointment_id}")
    return 0


def cmd_check_schedule(args: argparse.Namespace) -> int:
    from bot.outreach.schedule import load_schedule

    try:
        schedule = load_schedule(args.file)
    except DataFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    quiet = schedule.quiet_hours
    print(f"{schedule.path}: {len(schedule.messages)} texts; quiet hours {quiet.start:%H:%M}-{quiet.end:%H:%M}; "
          f"a check-in unanswered after {schedule.checkin_no_reply.total_seconds() / 3600:g} h is listed for a call")
    for message in schedule.messages:
        side = "before" if message.days <= 0 else "after"
        print(f"  {message.key:<18} {message.kind:<8} {abs(message.days)} day(s) {side} at {message.at:%H:%M}"
              f"  variants: {', '.join(message.texts)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot.outreach", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    add = commands.add_parser("add", help="book an appointment")
    add.add_argument("--phone", required=True)
    add.add_argument("--procedure", required=True, choices=ap.PROCEDURES)
    add.add_argument("--date", required=True, metavar="YYYY-MM-DD")
    add.add_argument("--time", required=True, metavar="HH:MM", help="the patient's local time")
    add.add_argument("--time-zone", required=True, metavar="ZONE", help="IANA name, e.g. America/Chicago")
    add.add_argument("--consent", required=True, choices=("yes", "no"), help="the patient agreed to texts")
    add.set_defaults(func=cmd_add)

    imp = commands.add_parser("import", help="book every row of a CSV file, or none")
    imp.add_argument("file")
    imp.set_defaults(func=cmd_import)

    lst = commands.add_parser("list", help="appointments, soonest first")
    lst.add_argument("--status", choices=("active", "cancelled", "all"), default="active")
    lst.add_argument("--when", choices=("upcoming", "past", "all"), default="upcoming")
    lst.add_argument("--limit", type=int, default=500)
    lst.add_argument("--unmask", action="store_true", help="full phone numbers (recorded in the access log)")
    lst.set_defaults(func=cmd_list)

    show = commands.add_parser("show", help="one appointment and its texts")
    show.add_argument("id", type=int)
    show.set_defaults(func=cmd_show)

    change = commands.add_parser("change", help="change or move an appointment (omitted values stay)")
    change.add_argument("id", type=int)
    change.add_argument("--phone")
    change.add_argument("--procedure", choices=ap.PROCEDURES)
    change.add_argument("--date", metavar="YYYY-MM-DD")
    change.add_argument("--time", metavar="HH:MM")
    change.add_argument("--time-zone", metavar="ZONE")
    change.add_argument("--consent", choices=("yes", "no"))
    change.set_defaults(func=cmd_change)

    cancel = commands.add_parser("cancel", help="cancel an appointment and its waiting texts")
    cancel.add_argument("id", type=int)
    cancel.set_defaults(func=cmd_cancel)

    no_reply = commands.add_parser("no-reply", help="check-ins nobody answered")
    no_reply.set_defaults(func=cmd_no_reply)

    check = commands.add_parser("check-schedule", help="validate the schedule file and show its times")
    check.add_argument("file", nargs="?")
    check.set_defaults(func=cmd_check_schedule)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DataFileError as error:  # the schedule file, read while planning texts
        print(f"error: {error}", file=sys.stderr)
        return 1
