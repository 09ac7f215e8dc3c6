"""Live escalation alerts: staff hear within seconds that a patient reported a red flag.

- `detect`: which stored patient message is an escalation (its key, level, symptoms, channel, time);
- `store`: the durable outbox (one row per escalated message, unique key; one delivery row per method)
  and the read API the review app uses (`alerts_for_conversation`, `alert_status_by_conversation`);
- `delivery`: the e-mail (SMTP) and the SMS to the on-call phone (Twilio REST API), their wording;
- `broker`: Rasa's event broker for endpoints.yml (RabbitMQ when RABBITMQ_URL is set, else none);
- `worker`: `python -m bot.alerts worker`, the supervised part that reads escalations (from RabbitMQ
  and/or incrementally from the tracker store's events table), records them once and delivers them
  with retries.
"""
