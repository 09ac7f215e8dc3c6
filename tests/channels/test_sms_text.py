"""SMS text forms: splitting at sentence boundaries, plain text, keywords, phone masking."""

from __future__ import annotations

import re

import pytest

from bot.channels.sms_text import (
    SMS_MAX_CHARS,
    keyword,
    message_text,
    plain_text,
    sms_messages,
    split_sms,
)
from bot.privacy import mask_sender

LONG_ANSWER = (
    "Do not eat or drink anything after midnight the night before, unless your care team tells you otherwise. "
    "You may take your usual morning medicines with a small sip of water. "
    "If you take medicine for diabetes, ask your doctor what to do, because you will not be eating. "
    "Bring a list of all your medicines, including herbs, vitamins and supplements, or bring the bottles. "
    "Wear loose, comfortable clothes and leave jewellery and valuables at home. "
    "Plan for an adult to drive you home, because you may get a relaxing medicine that makes you sleepy. "
    "Call {clinic_phone} if you are running late or cannot come."
)


def words(text: str) -> list[str]:
    return re.findall(r"\S+", text)


def test_short_text_is_one_message():
    assert split_sms("Take care!") == ["Take care!"]


def test_long_text_is_cut_between_sentences_and_nothing_is_lost():
    chunks = split_sms(LONG_ANSWER)
    assert len(chunks) > 1
    assert all(len(chunk) <= SMS_MAX_CHARS for chunk in chunks)
    assert all(re.search(r"[.!?]$", chunk) for chunk in chunks), chunks
    assert words(" ".join(chunks)) == words(LONG_ANSWER)


def test_a_very_long_sentence_is_cut_between_words_never_inside_one():
    sentence = " ".join(f"word{i}" for i in range(200)) + "."
    chunks = split_sms(sentence, 100)
    assert all(len(chunk) <= 100 for chunk in chunks)
    assert words(" ".join(chunks)) == words(sentence)  # every word whole, in order


def test_only_a_word_longer_than_the_limit_is_cut():
    url = "https://example.org/" + "a" * 400
    chunks = split_sms(f"See {url} today.", 160)
    assert all(len(chunk) <= 160 for chunk in chunks)
    assert "".join(chunks).replace(" ", "") == f"See{url}today."


@pytest.mark.parametrize("limit", [40, 80, 160, 320])
def test_every_limit_is_respected(limit):
    chunks = split_sms(LONG_ANSWER * 3, limit)
    assert all(0 < len(chunk) <= limit for chunk in chunks)
    assert words(" ".join(chunks)) == words(LONG_ANSWER * 3)


def test_line_breaks_and_bullets_are_kept():
    text = "Bring:\n- your pill bottles\n- a list of herbs\n\nCall us with questions."
    assert split_sms(text) == [text]


def test_markdown_and_html_are_stripped():
    assert plain_text("**Important:** see [our page](https://clinic.example/x) or `call`") == (
        "Important: see our page (https://clinic.example/x) or call"
    )
    assert plain_text("## Before\n* one\n+ two\n<b>bold</b>") == "Before\n- one\n- two\nbold"
    assert plain_text("It\u2019s \u201cfine\u201d \u2013 really\u2026") == "It's \"fine\" - really..."
    assert plain_text("a\x00b\x07c") == "abc"


def test_buttons_become_a_reply_line():
    message = {"text": "Which injection?", "buttons": [{"title": "Lower back", "payload": "/x"}, {"title": "Neck"}]}
    assert message_text(message) == "Which injection?\nReply: Lower back / Neck"


def test_several_messages_are_joined_then_numbered_when_split():
    bodies = sms_messages([{"text": LONG_ANSWER}, {"custom": {"kind": "seek_care"}}, {"text": "Take care!"}])
    assert len(bodies) > 1
    assert all(len(body) <= SMS_MAX_CHARS for body in bodies)
    assert [body.rsplit(" ", 1)[1] for body in bodies] == [f"({i}/{len(bodies)})" for i in range(1, len(bodies) + 1)]
    assert bodies[-1].startswith("Take care!") or "Take care!" in bodies[-1]
    assert sms_messages([{"text": "Hi"}, {"text": "Ask away."}]) == ["Hi\n\nAsk away."]
    assert sms_messages([{"custom": {"kind": "seek_care"}}]) == []


@pytest.mark.parametrize(
    "body, expected",
    [("STOP", "STOP"), (" stop ", "STOP"), ("Stop.", "STOP"), ("unsubscribe", "UNSUBSCRIBE"), ("help", "HELP"),
     ("can i stop aspirin", None), ("", None), ("   ", None), ("911", None), (None, None)],
)
def test_keyword(body, expected):
    assert keyword(body) == expected


@pytest.mark.parametrize(
    "phone, masked",
    [("+15550100142", "+1•••••0142"), ("5550100142", "5•••••0142"), ("whatsapp:+447700900123", "+4•••••0123"),
     ("", ""), (None, "")],
)
def test_phone_numbers_are_masked_in_sms_logs(phone, masked):
    assert mask_sender(phone) == masked
    assert "55501" not in mask_sender(phone)


def test_a_repeated_text_is_sent_once():
    message = {"text": "I'm not sure I understood. Please call the clinic."}
    assert sms_messages([message] * 10) == [message["text"]]


def test_a_runaway_reply_is_capped():
    bodies = sms_messages([{"text": f"{LONG_ANSWER} ({i})"} for i in range(20)], max_messages=4)
    assert len(bodies) == 4 and bodies[-1].startswith("That answer is too long for text messages. Please call {clinic_name}") and bodies[-1].endswith("(4/4)")
    assert all(len(body) <= SMS_MAX_CHARS for body in bodies)
