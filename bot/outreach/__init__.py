"""Outreach: texts sent to patients before and after their injection (issue 12).

- appointments.py: the appointments staff add (form, CSV, CLI), phone numbers in E.164, consent;
- schedule.py: the schedule file knowledge/outreach_schedule.yml (what to send when, quiet hours, no-reply window);
- outbox.py / worker.py: one row per message to send, and the worker that sends them through Twilio.
All tables live in one database, OUTREACH_DB_URL (bot.outreach.db).
"""
