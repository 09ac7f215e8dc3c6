"""Learning from conversations on SQLite and PostgreSQL: staff label unanswered or unsure messages (with who),
`python -m bot.review export-training` writes them once as Rasa NLU examples and regression cases, and the
dashboard shows the labelled count and the unanswered rate over time."""

from __future__ import annotations

import json
import re
import threading

import pytest
import sqlalchemy as sa

from bot.review import accesslog, labels
from bot.review.cli import main
from tests.review.conftest import USERNAME, csrf_token
from tests.review.conversations import TYPED_PHONE, by_key
from tests.review.followup_data import DECLINED_TEXT, UNANSWERED_SENDER, UNSURE_TEXT, add_followup_conversations

# checks that do not depend on the database (validation, guards, escaping) run on SQLite only
SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def html(response) -> str:
    return response.get_data(as_text=True)


@pytest.fixture
def queued(tracker_url) -> str:
    add_followup_conversations(tracker_url)
    return tracker_url


def event_ids(url: str, text: str) -> list[int]:
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT id, data FROM events WHERE type_name = 'user' ORDER BY id")).all()
    engine.dispose()
    return [int(row.id) for row in rows if json.loads(row.data).get("text") == text]


def event_id(url: str, text: str) -> int:
    ids = event_ids(url, text)
    assert len(ids) == 1, (text, ids)
    return ids[0]


def label(client, event: int, topic: str, back_to_list: bool = False):
    token = csrf_token(html(client.get("/learning")))
    form = {"csrf_token": token, "topic": topic}
    if back_to_list:
        form |= {"return": "list", "back": "state=all"}
    return client.post(f"/learning/message/{event}", data=form)


def stored_labels(app) -> list[sa.engine.Row]:
    with app.extensions["review"].review_db.connect() as connection:
        return connection.execute(sa.select(labels.message_labels).order_by(labels.message_labels.c.id)).all()


# --- labelling in the review app ----------------------------------------------------------------------
def test_unanswered_messages_are_listed_and_labelled_with_who(app, client, queued):
    declined = event_id(queued, DECLINED_TEXT)
    page = html(client.get("/learning"))
    assert f'id="message-{declined}"' in page
    assert UNSURE_TEXT not in page  # answered: listed under "unsure", not "unanswered"
    assert f'id="message-{event_id(queued, UNSURE_TEXT)}"' in html(client.get("/learning?kind=unsure"))

    response = label(client, declined, labels.NOT_IN_KNOWLEDGE, back_to_list=True)
    assert response.status_code == 302 and response.headers["Location"].endswith("/learning?state=all")
    rows = stored_labels(app)
    assert [(row.event_id, row.topic, row.labelled_by, row.original_intent, row.sender_id) for row in rows] == [
        (declined, labels.NOT_IN_KNOWLEDGE, USERNAME, "out_of_scope", UNANSWERED_SENDER)]
    assert rows[0].text_sha256 == labels.text_digest(DECLINED_TEXT)  # the text itself stays in the tracker store
    assert f'id="message-{declined}"' not in html(client.get("/learning"))  # "not labelled yet" is the default
    labelled = html(client.get("/learning?state=labelled"))
    assert f'id="message-{declined}"' in labelled and f"Labelled by {USERNAME}" in labelled

    # a misunderstood (answered) message is labelled from its own page; a label can change until exported
    unsure = event_id(queued, UNSURE_TEXT)
    assert "Label a message" in html(client.get(f"/learning/message/{unsure}"))
    label(client, unsure, "recovery")
    label(client, unsure, "driving")
    assert {row.event_id: row.topic for row in stored_labels(app)}[unsure] == "driving"
    log = accesslog.read(app.extensions["review"].review_db, limit=50)[0]
    details = [entry.detail for entry in log if entry.action == "label_message"]
    assert details[0].endswith("topic driving (was recovery)") and len(details) == 3


@SQLITE_ONLY
def test_bad_labels_are_refused(app, client, queued):
    declined = event_id(queued, DECLINED_TEXT)
    label(client, declined, "no_such_topic")
    assert "Choose a topic from the list" in html(client.get("/learning"))
    assert stored_labels(app) == []
    token = csrf_token(html(client.get("/learning")))
    assert client.post(f"/learning/message/{declined}", data={"topic": "driving"}).status_code == 400  # no CSRF
    assert client.post("/learning/message/99999999", data={"topic": "driving", "csrf_token": token}).status_code == 404
    bot_event = declined + 1  # the bot's reply: not a patient message
    assert client.get(f"/learning/message/{bot_event}").status_code == 404
    assert client.get("/learning?kind=everything").status_code == 400
    assert client.get("/learning?state=maybe").status_code == 400
    assert stored_labels(app) == []


@SQLITE_ONLY
def test_learning_pages_need_a_login(anon, queued):
    for path in ("/learning", f"/learning/message/{event_id(queued, DECLINED_TEXT)}"):
        assert anon.get(path).headers["Location"].startswith("/login?next=")


@SQLITE_ONLY
def test_patient_text_is_escaped_and_masked_on_the_learning_page(client, queued):
    from tests.review.followup_data import insert, user_row

    insert(queued, [user_row("xss-1", f"<script>alert(1)</script> call {TYPED_PHONE}", "nlu_fallback", 1.7e9, "rest")])
    page = html(client.get("/learning?from=2023-01-01&to=2024-12-31"))
    assert "&lt;script&gt;alert(1)&lt;/script&gt; call" in page
    assert "<script>" not in page and TYPED_PHONE not in page


# --- export-training ------------------------------------------------------------------------------------
@pytest.fixture
def export_paths(tmp_path):
    nlu_dir = tmp_path / "nlu"
    nlu_dir.mkdir()
    (nlu_dir / "existing.yml").write_text(
        'version: "3.1"\nnlu:\n  - intent: ask_driving\n    examples: |\n      - can someone else drive me home\n',
        encoding="utf-8")
    return {"nlu_dir": nlu_dir, "nlu_file": nlu_dir / "staff_labels.yml", "cases": tmp_path / "cases"}


def export(capsys, paths) -> tuple[int, str, str]:
    code = main(["export-training", "--nlu-file", str(paths["nlu_file"]), "--cases-dir", str(paths["cases"])])
    out, err = capsys.readouterr()
    return code, out, err


def read_nlu(path):
    """The exported file read by Rasa's own NLU reader (so it is valid training data)."""
    from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLReader

    data = RasaYAMLReader().read(path)
    return {(message.get("intent"), message.get("text")) for message in data.training_examples}


def test_export_training_writes_nlu_examples_and_cases_once(app, client, queued, export_paths, capsys):
    declined = event_id(queued, DECLINED_TEXT)
    unsure = event_id(queued, UNSURE_TEXT)
    label(client, declined, labels.NOT_IN_KNOWLEDGE)
    label(client, unsure, "driving")

    code, out, _ = export(capsys, export_paths)
    assert code == 0 and "Wrote 2 examples" in out
    assert read_nlu(export_paths["nlu_file"]) == {("out_of_scope", DECLINED_TEXT), ("ask_driving", UNSURE_TEXT)}
    questions = [json.loads(line) for line in (export_paths["cases"] / "questions.jsonl").read_text().splitlines()]
    declined_cases = [json.loads(line) for line in (export_paths["cases"] / "out_of_scope.jsonl").read_text().splitlines()]
    assert [(row["text"], row["topic"]) for row in questions] == [(UNSURE_TEXT, "driving")]
    assert questions[0]["expect_any"] == labels.expected_words("driving") and questions[0]["expect_any"]
    assert [row["text"] for row in declined_cases] == [DECLINED_TEXT]
    rows = {row.event_id: row for row in stored_labels(app)}
    assert rows[declined].exported_at and rows[declined].export_note == "exported as out_of_scope"
    assert rows[unsure].exported_by.startswith("cli:")

    # a second export writes nothing; an exported label can no longer change
    before = export_paths["nlu_file"].read_text()
    code, out, _ = export(capsys, export_paths)
    assert code == 0 and "Nothing new to export." in out
    assert export_paths["nlu_file"].read_text() == before
    label(client, unsure, "recovery")
    assert "already exported" in html(client.get("/learning"))
    assert {row.event_id: row.topic for row in stored_labels(app)}[unsure] == "driving"

    # new labels are added to the same file; existing examples are kept
    handoff = event_ids(queued, by_key("rest_unanswered").messages[0].text)
    if handoff:
        label(client, handoff[0], labels.NOT_IN_KNOWLEDGE)
        code, out, _ = export(capsys, export_paths)
        examples = read_nlu(export_paths["nlu_file"])
        assert ("ask_driving", UNSURE_TEXT) in examples and len(examples) == 3
    log = accesslog.read(app.extensions["review"].review_db, limit=50)[0]
    assert any(entry.action == "export_training" and entry.username.startswith("cli:") for entry in log)


@SQLITE_ONLY
def test_export_skips_duplicates_and_masks_phone_numbers(app, client, queued, export_paths, capsys):
    from tests.review.followup_data import insert, user_row

    insert(queued, [user_row("dup-1", "Can someone else drive me home", "nlu_fallback", 1.7e9, "rest"),
                    user_row("dup-2", "do you validate PARKING at the clinic garage", "out_of_scope", 1.7e9, "rest"),
                    user_row("phone-1", f"call me on {TYPED_PHONE} about parking", "out_of_scope", 1.7e9, "rest")])
    for text in ("Can someone else drive me home", DECLINED_TEXT, "do you validate PARKING at the clinic garage",
                 f"call me on {TYPED_PHONE} about parking"):
        label(client, event_id(queued, text), labels.NOT_IN_KNOWLEDGE)
    monkeypatch_dir = export_paths["nlu_dir"]
    result = labels.export_training(app.extensions["review"].store, app.extensions["review"].review_db, "dev",
                                    export_paths["nlu_file"], export_paths["cases"], monkeypatch_dir)
    texts = {text for _, text in read_nlu(export_paths["nlu_file"])}
    assert DECLINED_TEXT in texts and len(texts) == 2  # same words as the training data / another label: once
    assert TYPED_PHONE not in export_paths["nlu_file"].read_text()
    assert {why for _, why in result.skipped} == {"already in the training data or the cases"}
    assert len(result.skipped) == 2
    again = labels.export_training(app.extensions["review"].store, app.extensions["review"].review_db, "dev",
                                   export_paths["nlu_file"], export_paths["cases"], monkeypatch_dir)
    assert again.exported == 0 and again.skipped == []  # skipped ones are settled too: never tried again


def test_two_exports_at_once_export_each_message_once(app, client, queued, export_paths):
    for text in (DECLINED_TEXT, UNSURE_TEXT):
        label(client, event_id(queued, text), labels.NOT_IN_KNOWLEDGE if text == DECLINED_TEXT else "driving")
    results: list[labels.ExportResult] = []
    barrier = threading.Barrier(2)

    def run(index: int) -> None:
        barrier.wait()
        results.append(labels.export_training(app.extensions["review"].store, app.extensions["review"].review_db,
                                              f"dev{index}", export_paths["nlu_dir"] / f"out{index}.yml",
                                              export_paths["cases"] / str(index), export_paths["nlu_dir"]))

    threads = [threading.Thread(target=run, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(result.exported for result in results) in ([0, 2], [1, 1])
    assert sum(result.exported for result in results) == 2


# --- dashboard ------------------------------------------------------------------------------------------
def test_dashboard_shows_labelled_count_and_unanswered_rate(app, client, queued):
    label(client, event_id(queued, DECLINED_TEXT), labels.NOT_IN_KNOWLEDGE)
    page = html(client.get("/dashboard"))
    match = re.search(r"<strong>(\d+)</strong> of (\d+) unanswered messages labelled", page)
    assert match and int(match.group(1)) == 1 and int(match.group(2)) >= 2
    assert "Unanswered rate per week" in page and "% unanswered (" in page
    assert "Unanswered rate per day" in html(client.get("/dashboard?from=2001-01-01&to=2001-01-07"))


def test_rate_points_group_days_into_weeks():
    from datetime import date, timedelta

    days = [date(2026, 1, 1) + timedelta(days=n) for n in range(30)]
    patient = {day: 10 for day in days}
    unanswered = {days[0]: 5, days[8]: 1}
    points = labels.rate_points(days, patient, unanswered)
    assert [(label, part, whole) for label, part, whole in points][:2] == [("Jan 01", 5, 70), ("Jan 08", 1, 70)]
    assert len(points) == 5 and points[-1][2] == 20
    assert len(labels.rate_points(days[:14], patient, unanswered)) == 14


@SQLITE_ONLY
def test_every_patient_message_of_a_transcript_links_to_its_label_page(app, client, queued):
    """A misunderstood (answered, but wrongly) message is labelled from the transcript."""
    unsure = event_id(queued, UNSURE_TEXT)
    ref = app.extensions["review"].store.ref_for_sender(UNANSWERED_SENDER)
    page = html(client.get(f"/conversations/{ref}"))
    links = re.findall(r'class="label-link" href="/learning/message/(\d+)"', page)
    assert links == [str(unsure), str(event_id(queued, DECLINED_TEXT))]
    assert "Label a message" in html(client.get(f"/learning/message/{links[0]}"))


def test_exported_cases_pass_when_the_bot_gives_the_labelled_answer():
    """Each topic's expect_any words are in that entry's reply (web and REST), whatever the procedure, so an
    exported case fails only when the bot answers something else."""
    from bot.knowledge import knowledge_base

    kb = knowledge_base()
    for topic, _ in labels.topic_choices():
        if topic == labels.NOT_IN_KNOWLEDGE:
            continue
        words = labels.expected_words(topic)
        assert words, topic
        for procedure in (None, "lumbar", "cervical"):
            reply = kb.reply(kb.by_id[topic], procedure, "rest").text.lower()
            assert any(word in reply for word in words), (topic, procedure, words)


@SQLITE_ONLY
def test_export_skips_purged_messages_and_removed_topics(app, client, queued, export_paths):
    """A message deleted by the retention purge, or a label whose knowledge entry was removed, is skipped and
    settled; the others are still exported."""
    declined, unsure = event_id(queued, DECLINED_TEXT), event_id(queued, UNSURE_TEXT)
    label(client, declined, labels.NOT_IN_KNOWLEDGE)
    label(client, unsure, "driving")
    handoff = event_id(queued, "hello? is anyone there")
    label(client, handoff, "appointment")
    engine = sa.create_engine(queued)
    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM events WHERE id = :id"), {"id": declined})
    engine.dispose()
    with app.extensions["review"].review_db.begin() as connection:
        connection.execute(labels.message_labels.update().where(labels.message_labels.c.event_id == unsure)
                           .values(topic="an_entry_since_removed"))
    result = labels.export_training(app.extensions["review"].store, app.extensions["review"].review_db, "dev",
                                    export_paths["nlu_file"], export_paths["cases"], export_paths["nlu_dir"])
    assert result.exported == 1 and read_nlu(export_paths["nlu_file"]) == {("ask_appointment", "hello? is anyone there")}
    assert dict(result.skipped) == {declined: "the message is no longer in the tracker store",
                                    unsure: "topic 'an_entry_since_removed' is no longer in the knowledge base"}
