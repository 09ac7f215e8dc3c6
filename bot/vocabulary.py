"""Names and limits shared by the Rasa process, the action server, the channels and the review app.

One home for each: a name used in domain.yml, the NLU components, the actions and the review tools is
written here once, so the processes cannot drift apart. (Environment settings live in bot/config.py.)
"""

from __future__ import annotations

# --- intents --------------------------------------------------------------------------------------
URGENT_INTENT = "report_urgent_symptom"  # set by UrgentSymptomDetector when a triage rule fires
CHECK_SYMPTOM_INTENT = "check_symptom"  # a possible new problem that no rule confirms
OTHER_LANGUAGE_INTENT = "other_language"  # set by LanguageDetector
FALLBACK_INTENT = "nlu_fallback"  # Rasa's FallbackClassifier
OUT_OF_SCOPE_INTENT = "out_of_scope"
DECLINE_INTENTS = (OUT_OF_SCOPE_INTENT, FALLBACK_INTENT)  # how the bot declines a question
INFORM_PROCEDURE = "inform_procedure"
MORE_ON_TOPIC = "more_on_topic"
OTHER_PROCEDURE = "other_procedure"
CHECKIN_FINE_INTENT = "checkin_fine"  # "1" after an outreach check-in text: I feel OK
CHECKIN_QUESTION_INTENT = "checkin_question"  # "2" after a check-in: I have a question

# --- message keys set by the NLU components --------------------------------------------------------
INTENT_BEFORE_TRIAGE = "intent_before_triage"  # the classifier's intent, kept when triage overrides it
NOT_COVERED_KEY = "not_covered"  # the knowledge/not_covered.yml group a declined message named

# --- entities and slots -----------------------------------------------------------------------------
ENTITY_TRIAGE_LEVEL = SLOT_TRIAGE_LEVEL = "triage_level"
ENTITY_SYMPTOM = "symptom"
SLOT_SYMPTOMS = "symptoms"
ENTITY_SYMPTOM_CHECK = SLOT_SYMPTOM_CHECK = "symptom_check"
ENTITY_LANGUAGE = SLOT_LANGUAGE = "language"
ENTITY_PROCEDURE = SLOT_PROCEDURE = "procedure"
SLOT_LAST_TOPIC = "last_topic"
SLOT_STAFF_TAKEOVER = "staff_takeover"  # {"staff", "since", "until"} while staff have taken over (bot/takeover.py)
SLOT_LAST_OUTREACH = "last_outreach"  # {"message_id", "key", "kind", "sent_at"} of the last outreach text

# --- triage levels, most serious first ---------------------------------------------------------------
EMERGENCY = "emergency"
URGENT = "urgent"
TRIAGE_LEVELS = (EMERGENCY, URGENT)
SEEK_CARE_KIND = "seek_care"  # `custom.kind` of the seek-care messages (domain.yml utter_seek_care_<level>)
SYMPTOM_CHECK_KIND = "symptom_check"  # `custom.kind` of the symptom check-in (domain.yml)

# --- staff messages (bot/review/replies.py) ------------------------------------------------------------
STAFF_MESSAGE_KEY = "sent_by_staff"  # bot-event metadata: the staff member's username (a staff reply or notice)
STAFF_REPLY_KIND = "staff_reply"  # `custom.kind` of a message staff wrote
STAFF_NOTICE_KIND = "staff_notice"  # `custom.kind` of the takeover / hand-back notices
STAFF_REPLY_MAX_CHARS = 1_600  # Twilio's limit for one message body

# --- outreach texts (bot/outreach) ---------------------------------------------------------------------
OUTREACH_MESSAGE_KEY = "outreach"  # bot-event metadata of a reminder / check-in text: {"message_id", "key", "kind"}
OUTREACH_REMINDER_KIND = "outreach_reminder"  # `custom.kind` of a reminder text
OUTREACH_CHECKIN_KIND = "outreach_checkin"  # `custom.kind` of a check-in text

# --- channels (Rasa output channel names) ----------------------------------------------------------
CHANNEL_REST = "rest"
CHANNEL_WEB = "socketio"
CHANNEL_SMS = "sms"
SMS_OPTED_OUT_KEY = "sms_opted_out"  # user-message metadata: sent after STOP, recorded but never answered

# --- limits -------------------------------------------------------------------------------------------
MAX_MESSAGE_CHARS = 20_000  # longest accepted patient message on every channel; triage reads all of it
SEEK_CARE_DEADLINE_S = 0.7  # a red flag the bot has not answered by then gets seek-care from the channel guard
SMS_MAX_CHARS = 320  # one SMS reply part (two concatenated segments)
STRONG_FUZZY_MATCH = 88.0  # rapidfuzz score at which the second opinion may answer an unsure message
