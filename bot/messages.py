"""Channel wording: the fixed patient-facing messages the channels send outside the dialogue.

Everything the dialogue says lives in domain.yml (responses) and knowledge/topics/ (answers); these are
the channels' own lines (the reply guard, SMS keywords and limits, the SMS procedure question). Placeholders
such as {clinic_phone} are filled from the clinic settings (bot.settings.fill_placeholders) when sent.
The reading-grade and no-copy tests read every upper-case string constant of this module.
"""

SAFE_REPLY = (
    "Sorry, I can't answer that right now. Please call {clinic_name} at {clinic_phone} "
    "({clinic_hours}). If you think you have an emergency, call {emergency_number} now."
)
EMPTY_REPLY = "I didn't get a message. Please type your question about your nerve root injection."

# SMS (Twilio) keywords and limits
OPT_OUT_REPLY = (
    "You will get no more texts from the {clinic_name} assistant. Reply START to turn texts back on. "
    "Questions: call {clinic_phone}. Emergency: call {emergency_number}."
)
OPT_IN_REPLY = (
    "Texts from the {clinic_name} assistant are on. Ask a question about your nerve root injection. "
    "Reply HELP for help, STOP to opt out."
)
HELP_REPLY = (
    "{clinic_name} patient assistant: answers about your nerve root injection. To talk with staff call "
    "{clinic_phone} ({clinic_hours}). Emergency: call {emergency_number}. Reply STOP to opt out."
)
MEDIA_REPLY = "I can only read text. Please type your question about your nerve root injection."
SMS_TRUNCATED_NOTE = "That answer is too long for text messages. Please call {clinic_name} at {clinic_phone}."
SMS_ASK_PROCEDURE = "Is your injection in your lower back (lumbar) or your neck (cervical)? Reply LOWER BACK or NECK."

# Staff takeover (bot/review/replies.py): sent once when a staff member takes over, and when they hand back
TAKEOVER_NOTICE = (
    "A person from {clinic_name} is reading your messages and will reply here. "
    "If you think you have an emergency, call {emergency_number} now."
)
HANDBACK_NOTICE = "The clinic's assistant is answering your questions again. You can also call {clinic_phone}."
