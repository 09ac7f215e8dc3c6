"""Learning from conversations: staff label messages the bot could not answer, developers export them.

Staff pick, for an unanswered (declined) or unsure message, the knowledge entry that answers it or
"not in our knowledge". A label keeps the tracker event id, a SHA-256 of the text (not the text: patient
words stay in the tracker store, under its retention), the intent the bot chose, who labelled and when.

`python -m bot.review export-training` turns labels not yet exported into
- Rasa NLU examples in one file under data/nlu/ (the entry's intent, or `out_of_scope`) for a developer to
  review, retrain (`make model`) and commit, and
- regression cases for the frozen patient sets (tests/eval/staff_labels/: questions.jsonl and
  out_of_scope.jsonl, the format of tests/eval/README and bot/devtools/patient_eval.py).
Each label is claimed in the database before it is written, so no message is exported twice (not by two
exports at once either); a text already in the training data or the cases is skipped and marked as such.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
import weakref
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bot.paths import PROJECT_ROOT as ROOT
from bot.privacy import mask_text
from bot.review import accesslog
from bot.review.db import metadata
from bot.review.events import UNANSWERED_INTENTS, UNANSWERED_SQL, event_data, user_intent
from bot.review.filters import channel_label, day_start
from bot.review.store import ID_CHUNK, ConversationStore
from bot.vocabulary import OUT_OF_SCOPE_INTENT

NOT_IN_KNOWLEDGE = "not_in_knowledge"
NOT_IN_KNOWLEDGE_LABEL = "Not in our knowledge"
UNSURE_CONFIDENCE = 0.6  # an answered message below this confidence may have been misunderstood
KINDS = ("unanswered", "unsure")
KIND_LABELS = {"unanswered": "Unanswered (the bot declined)", "unsure": "Answered, but unsure (possibly misunderstood)"}
LABEL_STATES = ("unlabelled", "labelled", "all")
MAX_SCAN = 2000  # messages read per page view (the newest first)
NLU_FILE = ROOT / "data" / "nlu" / "staff_labels.yml"
CASES_DIR = ROOT / "tests" / "eval" / "staff_labels"
NLU_DIR = ROOT / "data" / "nlu"
ACCESS_ACTIONS = {
    "view_learning": "Viewed messages to label",
    "label_message": "Labelled a message",
    "export_training": "Exported labelled messages as training data",
}

message_labels = sa.Table(
    "review_message_labels",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("event_id", sa.BigInteger, nullable=False, unique=True),  # the `user` event in the tracker store
    sa.Column("sender_id", sa.String(255), nullable=False, index=True),
    sa.Column("text_sha256", sa.String(64), nullable=False),
    sa.Column("original_intent", sa.String(100)),
    sa.Column("message_at", sa.Float, nullable=False, index=True),
    sa.Column("topic", sa.String(100), nullable=False),  # knowledge entry id, or NOT_IN_KNOWLEDGE
    sa.Column("labelled_by", sa.String(80), nullable=False),
    sa.Column("labelled_at", sa.Float, nullable=False),
    sa.Column("exported_at", sa.Float),
    sa.Column("exported_by", sa.String(80)),
    sa.Column("export_note", sa.String(200)),  # "exported", or why it was skipped (duplicate, message gone...)
)

_ready: weakref.WeakSet[Engine] = weakref.WeakSet()


def ensure_tables(engine: Engine) -> None:
    if engine not in _ready:
        metadata.create_all(engine, tables=[message_labels])
        _ready.add(engine)


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- topics staff can choose ---------------------------------------------------------------------------
def topic_choices() -> list[tuple[str, str]]:
    """(value, name) of every knowledge entry, then "not in our knowledge"."""
    from bot.knowledge import knowledge_base

    entries = sorted(knowledge_base().entries, key=lambda entry: entry.id)
    return [(entry.id, entry.id.replace("_", " ").capitalize()) for entry in entries] + \
        [(NOT_IN_KNOWLEDGE, NOT_IN_KNOWLEDGE_LABEL)]


def topic_name(topic: str | None) -> str:
    return dict(topic_choices()).get(topic or "", topic or "")


def intent_for_topic(topic: str) -> str:
    from bot.knowledge import knowledge_base

    if topic == NOT_IN_KNOWLEDGE:
        return OUT_OF_SCOPE_INTENT
    return knowledge_base().by_id[topic].intents[0]


# --- messages to label ---------------------------------------------------------------------------------
@dataclass
class Label:
    topic: str
    labelled_by: str
    labelled_at: float
    exported_at: float | None
    export_note: str | None

    @property
    def topic_name(self) -> str:
        return topic_name(self.topic)


@dataclass
class Message:
    event_id: int
    sender_id: str
    ref: int
    at: datetime
    text: str
    intent: str | None
    confidence: float | None
    channel: str | None
    label: Label | None = None

    @property
    def channel_label(self) -> str:
        return channel_label(self.channel)

    @property
    def unanswered(self) -> bool:
        return self.intent in UNANSWERED_INTENTS


@dataclass
class MessagePage:
    messages: list[Message]
    total: int
    page: int
    per_page: int
    scanned: int
    counts: dict[str, int] = field(default_factory=dict)  # unanswered / labelled / exported over the scan

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def _labels(review_db: Engine, event_ids: Iterable[int]) -> dict[int, Label]:
    ensure_tables(review_db)
    ids = sorted(set(event_ids))
    found: dict[int, Label] = {}
    with review_db.connect() as connection:
        for start in range(0, len(ids), ID_CHUNK):
            rows = connection.execute(sa.select(message_labels).where(
                message_labels.c.event_id.in_(ids[start:start + ID_CHUNK]))).all()
            for row in rows:
                found[int(row.event_id)] = Label(row.topic, row.labelled_by, row.labelled_at, row.exported_at,
                                                 row.export_note)
    return found


def _refs(store: ConversationStore, senders: Iterable[str]) -> dict[str, int]:
    senders = sorted(set(senders))
    refs: dict[str, int] = {}
    for start in range(0, len(senders), ID_CHUNK):
        chunk = senders[start:start + ID_CHUNK]
        placeholders = ", ".join(f":s{n}" for n in range(len(chunk)))
        rows = store.rows(f"SELECT sender_id, MIN(id) AS ref FROM events WHERE sender_id IN ({placeholders}) "
                          "GROUP BY sender_id", {f"s{n}": value for n, value in enumerate(chunk)})
        refs.update({row.sender_id: int(row.ref) for row in rows})
    return refs


def _messages(store: ConversationStore, rows: list[sa.engine.Row]) -> list[Message]:
    refs = _refs(store, (row.sender_id for row in rows))
    messages = []
    for row in rows:
        data = event_data(row.data)
        intent, confidence = user_intent(data)
        messages.append(Message(int(row.id), row.sender_id, refs.get(row.sender_id, int(row.id)),
                                store.local_time(row.timestamp), str(data.get("text") or ""),  # type: ignore[arg-type]
                                row.intent_name or intent, confidence, data.get("input_channel")))
    return messages


def list_messages(store: ConversationStore, review_db: Engine, kind: str = "unanswered", state: str = "unlabelled",
                  date_from: date | None = None, date_to: date | None = None, page: int = 1,
                  per_page: int = 50) -> MessagePage:
    """The newest unanswered (or unsure) patient messages of the period, with their labels."""
    if not store.available():
        return MessagePage([], 0, page, per_page, 0)
    where = ["type_name = 'user'"]
    params: dict[str, object] = {"limit": MAX_SCAN}
    if kind == "unanswered":
        where.append(f"intent_name IN {UNANSWERED_SQL}")
    else:
        confidence = store.json("parse_data", "intent", "confidence")
        where.append(f"intent_name NOT IN {UNANSWERED_SQL} AND CAST({confidence} AS FLOAT) < :unsure")
        params["unsure"] = UNSURE_CONFIDENCE
    if date_from:
        where.append("timestamp >= :start")
        params["start"] = day_start(date_from, store.tz)
    if date_to:
        where.append("timestamp < :end")
        params["end"] = day_start(date_to + timedelta(days=1), store.tz)
    rows = store.rows(f"SELECT id, sender_id, timestamp, intent_name, data FROM events WHERE {' AND '.join(where)} "
                      "ORDER BY id DESC LIMIT :limit", params)
    labels = _labels(review_db, (int(row.id) for row in rows))
    wanted = [row for row in rows if state == "all" or (int(row.id) in labels) == (state == "labelled")]
    messages = _messages(store, wanted[(page - 1) * per_page: page * per_page])
    for message in messages:
        message.label = labels.get(message.event_id)
    counts = {"messages": len(rows), "labelled": len(labels),
              "exported": sum(1 for label in labels.values() if label.exported_at)}
    return MessagePage(messages, len(wanted), page, per_page, len(rows), counts)


def read_message(store: ConversationStore, review_db: Engine, event_id: int) -> Message | None:
    """One patient message by its event id (any patient message can be labelled: a misunderstood one too)."""
    if not store.available():
        return None
    rows = store.rows("SELECT id, sender_id, timestamp, intent_name, data FROM events "
                      "WHERE id = :id AND type_name = 'user'", {"id": event_id})
    if not rows:
        return None
    message = _messages(store, rows)[0]
    message.label = _labels(review_db, [event_id]).get(event_id)
    return message


class LabelRefused(ValueError):
    """A label that cannot be saved (already exported, unknown topic): told to staff, nothing changed."""


def save_label(store: ConversationStore, review_db: Engine, username: str, event_id: int, topic: str,
               ip: str | None = None) -> Message:
    """Store (or change, until it is exported) the label of one patient message, recorded in the access log."""
    if topic not in dict(topic_choices()):
        raise LabelRefused("Choose a topic from the list, or \"Not in our knowledge\".")
    message = read_message(store, review_db, event_id)
    if message is None:
        raise LookupError(event_id)
    if message.label and message.label.exported_at:
        raise LabelRefused("This message was already exported as training data; its label can no longer change.")
    values = dict(sender_id=message.sender_id, text_sha256=text_digest(message.text), original_intent=message.intent,
                  message_at=message.at.timestamp(), topic=topic, labelled_by=username[:80], labelled_at=time.time())
    ensure_tables(review_db)
    with review_db.begin() as connection:
        updated = connection.execute(message_labels.update().where(
            (message_labels.c.event_id == event_id) & message_labels.c.exported_at.is_(None)).values(**values))
        if not updated.rowcount:
            try:
                with connection.begin_nested():
                    connection.execute(message_labels.insert().values(event_id=event_id, **values))
            except sa.exc.IntegrityError:
                raise LabelRefused("This message was exported meanwhile; its label can no longer change.") from None
    before = f" (was {message.label.topic})" if message.label else ""
    accesslog.record(review_db, username, "label_message", message.sender_id,
                     f"conversation {message.ref}; message {event_id}; topic {topic}{before}", ip)
    message.label = Label(topic, username, values["labelled_at"], None, None)  # type: ignore[arg-type]
    return message


def labelled_unanswered(review_db: Engine, start: float, end: float) -> int:
    """Unanswered messages of [start, end) that staff labelled (for the dashboard)."""
    ensure_tables(review_db)
    with review_db.connect() as connection:
        return int(connection.execute(
            sa.select(sa.func.count()).select_from(message_labels).where(
                message_labels.c.message_at >= start, message_labels.c.message_at < end,
                message_labels.c.original_intent.in_(UNANSWERED_INTENTS))).scalar_one())


# --- export as training data -------------------------------------------------------------------------
_ANNOTATION = re.compile(r"\[[^\]]*\]\s*[({]")  # Rasa reads [text](entity) / [text]{...} as entity markup
_WORD = re.compile(r"[a-z]{5,}")
_PLACEHOLDER = re.compile(r"\{[^}]*\}")


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def training_text(text: str) -> str | None:
    """The example as written to the NLU file: one line, phone numbers and e-mails masked; None if unusable."""
    line = " ".join(mask_text(text).split())
    if not line or len(line) > 500 or _ANNOTATION.search(line) or not line.isprintable():
        return None
    return line


def existing_examples(nlu_dir: Path) -> set[str]:
    """Every example already in the training data (normalised), so an export never duplicates one."""
    import yaml

    found: set[str] = set()
    for path in sorted(nlu_dir.glob("*.yml")):
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for item in raw.get("nlu") or []:
            for line in str(item.get("examples") or "").splitlines():
                if line.strip().startswith("- "):
                    found.add(normalise(line.strip()[2:]))
    return found


def read_nlu_file(path: Path) -> dict[str, list[str]]:
    import yaml

    if not path.is_file():
        return {}
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    examples: dict[str, list[str]] = defaultdict(list)
    for item in raw.get("nlu") or []:
        for line in str(item.get("examples") or "").splitlines():
            if line.strip().startswith("- "):
                examples[str(item["intent"])].append(line.strip()[2:])
    return dict(examples)


NLU_HEADER = """version: "3.1"

# Patient messages labelled by clinic staff in the review app, written by `python -m bot.review export-training`.
# Review every line before committing (phone numbers and e-mails are masked; remove anything else personal),
# then retrain with `make model`. New exports are added below; an example is never exported twice.

nlu:
"""


def write_nlu_file(path: Path, examples: dict[str, list[str]]) -> None:
    lines = [NLU_HEADER]
    for intent in sorted(examples):
        lines.append(f"  - intent: {intent}\n    examples: |\n")
        lines.extend(f"      - {text}\n" for text in examples[intent])
    _write_atomically(path, "".join(lines))


def _write_atomically(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(body, encoding="utf-8")
    os.replace(temporary, path)


def expected_words(topic: str, limit: int = 4, eval_dir: Path = ROOT / "tests" / "eval") -> list[str]:
    """The cases' `expect_any`: what the hand-written sets expect for this topic, else words every variant of
    the entry's web answer contains and few other entries use."""
    from bot.knowledge import knowledge_base

    written: Counter[tuple[str, ...]] = Counter()
    for path in sorted(eval_dir.glob("*/questions.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line) if line.strip() else {}
            if row.get("topic") == topic and row.get("expect_any") and row.get("source") != "staff-label":
                written[tuple(row["expect_any"])] += 1
    if written:
        return list(written.most_common(1)[0][0])
    entries = knowledge_base().entries

    def words(entry) -> set[str]:
        variants = [set(_WORD.findall(_PLACEHOLDER.sub(" ", answer.web.lower()))) for answer in entry.answers.values()]
        return set.intersection(*variants) if variants else set()

    frequency: Counter[str] = Counter(word for entry in entries for word in words(entry))
    mine = words(knowledge_base().by_id[topic])
    return sorted(mine, key=lambda word: (frequency[word], -len(word), word))[:limit]


def _jsonl_texts(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    return {normalise(json.loads(line)["text"]) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()}


def _append_jsonl(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


@dataclass
class ExportResult:
    examples: dict[str, list[str]] = field(default_factory=dict)  # intent -> new examples
    questions: list[dict] = field(default_factory=list)
    out_of_scope: list[dict] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (event id, why)

    @property
    def exported(self) -> int:
        return sum(len(texts) for texts in self.examples.values())


def export_training(store: ConversationStore, review_db: Engine, username: str, nlu_file: Path = NLU_FILE,
                    cases_dir: Path = CASES_DIR, nlu_dir: Path = NLU_DIR) -> ExportResult:
    """Write every label not yet exported as NLU examples and regression cases (see the module docstring)."""
    ensure_tables(review_db)
    claimed_at = time.time()
    claim = f"claimed {uuid.uuid4().hex}"
    with review_db.begin() as connection:  # claim first: a second export running at once gets none of these
        ids = [int(row.id) for row in connection.execute(
            sa.select(message_labels.c.id).where(message_labels.c.exported_at.is_(None))
            .order_by(message_labels.c.id)).all()]
        claimed = []
        for start in range(0, len(ids), ID_CHUNK):
            chunk = ids[start:start + ID_CHUNK]
            connection.execute(message_labels.update().where(
                message_labels.c.id.in_(chunk) & message_labels.c.exported_at.is_(None))
                .values(exported_at=claimed_at, exported_by=username[:80], export_note=claim))
        if ids:
            claimed = connection.execute(sa.select(message_labels).where(message_labels.c.export_note == claim)
                                         .order_by(message_labels.c.id)).all()
    result = ExportResult()
    notes: dict[int, str] = {}
    try:
        texts = _texts(store, [int(row.event_id) for row in claimed])
        seen = existing_examples(nlu_dir)
        seen |= _jsonl_texts(cases_dir / "questions.jsonl") | _jsonl_texts(cases_dir / "out_of_scope.jsonl")
        file_examples = read_nlu_file(nlu_file)
        topics = dict(topic_choices())
        seen |= {normalise(text) for values in file_examples.values() for text in values}
        for row in claimed:
            event_id = int(row.event_id)
            stored = texts.get(event_id)
            if stored is None or stored[0] != row.sender_id or text_digest(stored[1]) != row.text_sha256:
                notes[row.id] = "skipped: the message is no longer in the tracker store"
                continue
            line = training_text(stored[1])
            if line is None:
                notes[row.id] = "skipped: empty, too long or looks like entity markup"
                continue
            if normalise(line) in seen:
                notes[row.id] = "skipped: already in the training data or the cases"
                continue
            if row.topic not in topics:
                notes[row.id] = f"skipped: topic {row.topic!r} is no longer in the knowledge base"
                continue
            seen.add(normalise(line))
            intent = intent_for_topic(row.topic)
            result.examples.setdefault(intent, []).append(line)
            if row.topic == NOT_IN_KNOWLEDGE:
                result.out_of_scope.append({"text": line, "source": "staff-label"})
            else:
                result.questions.append({"text": line, "expect_any": expected_words(row.topic), "topic": row.topic,
                                         "source": "staff-label"})
            notes[row.id] = f"exported as {intent}"
        for row in claimed:
            if notes[row.id].startswith("skipped"):
                result.skipped.append((int(row.event_id), notes[row.id].removeprefix("skipped: ")))
        if result.exported:
            for intent, lines in result.examples.items():
                file_examples.setdefault(intent, []).extend(lines)
            write_nlu_file(nlu_file, file_examples)
            _append_jsonl(cases_dir / "questions.jsonl", result.questions)
            _append_jsonl(cases_dir / "out_of_scope.jsonl", result.out_of_scope)
    except BaseException:
        with review_db.begin() as connection:  # give the claim back: the next export tries again
            connection.execute(message_labels.update().where(message_labels.c.export_note == claim).values(exported_at=None, exported_by=None, export_note=None))
        raise
    with review_db.begin() as connection:
        for row_id, note in notes.items():
            connection.execute(message_labels.update().where(message_labels.c.id == row_id).values(export_note=note))
    accesslog.record(review_db, username, "export_training",
                     detail=f"{result.exported} examples to {nlu_file.name}; {len(result.skipped)} skipped")
    return result


def _texts(store: ConversationStore, event_ids: list[int]) -> dict[int, tuple[str, str]]:
    """(sender, text) of each `user` event id still in the tracker store."""
    found: dict[int, tuple[str, str]] = {}
    if not event_ids or not store.available():
        return found
    for start in range(0, len(event_ids), ID_CHUNK):
        chunk = event_ids[start:start + ID_CHUNK]
        placeholders = ", ".join(f":i{n}" for n in range(len(chunk)))
        rows = store.rows(f"SELECT id, sender_id, data FROM events WHERE type_name = 'user' AND id IN ({placeholders})",
                          {f"i{n}": value for n, value in enumerate(chunk)})
        for row in rows:
            found[int(row.id)] = (row.sender_id, str(event_data(row.data).get("text") or ""))
    return found


# --- dashboard: labelled count and how the unanswered rate changes ---------------------------------------
@dataclass
class LearningFigures:
    unanswered: int  # unanswered patient messages in the period
    labelled: int  # of which staff labelled
    rates: list[tuple[str, int, int]]  # (period, unanswered, patient messages) per week, or per day
    chart: object  # bot.review.charts.Chart

    @property
    def labelled_share(self) -> float | None:
        return self.labelled / self.unanswered if self.unanswered else None


def rate_points(days: list[date], patient: dict[date, int], unanswered: dict[date, int]) -> list[tuple[str, int, int]]:
    """(label, unanswered, patient messages) per day for up to two weeks, else per 7-day step from the start."""
    step = 1 if len(days) <= 14 else 7
    points = []
    for index in range(0, len(days), step):
        chunk = days[index:index + step]
        label = chunk[0].strftime("%b %d")
        points.append((label, sum(unanswered.get(day, 0) for day in chunk), sum(patient.get(day, 0) for day in chunk)))
    return points


def learning_figures(review_db: Engine, dashboard, tz) -> LearningFigures:
    """What the dashboard shows about learning: labelled unanswered messages and the unanswered rate over time."""
    from bot.review.charts import rate_chart

    start = day_start(dashboard.days[0], tz)
    end = day_start(dashboard.days[-1] + timedelta(days=1), tz)
    points = rate_points(dashboard.days, dashboard.patient_messages, dashboard.unanswered)
    title = "Unanswered rate per " + ("day" if len(dashboard.days) <= 14 else "week")
    return LearningFigures(dashboard.total_unanswered, labelled_unanswered(review_db, start, end), points,
                           rate_chart(title, points))


accesslog.ACTIONS.update(ACCESS_ACTIONS)
