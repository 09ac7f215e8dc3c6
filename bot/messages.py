"""Fixed patient-facing messages used outside domain.yml (filled with clinic settings at send time)."""

SAFE_REPLY = (
    "Sorry, I can't answer that right now. Please call {clinic_name} at {clinic_phone} "
    "({clinic_hours}). If you think you have an emergency, call {emergency_number} now."
)
EMPTY_REPLY = "I didn't get a message. Please type your question about your nerve root injection."
FALLBACK_REPLY = (
    "I'm not sure I understood, and I don't want to guess. Please ask in other words, "
    "or call {clinic_name} at {clinic_phone} ({clinic_hours}). If you feel unwell or something "
    "is getting worse, call the clinic now. In an emergency, call {emergency_number}."
)
