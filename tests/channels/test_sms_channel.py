"""The SMS channel over real HTTP with a stand-in bot (no trained model needed).

Signed Twilio-format requests against the channel's own blueprint on a local Sanic server:
signatures, TwiML, opt-out/opt-in/help, duplicate MessageSids, empty and long bodies, timeouts.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from bot.channels.sms import SmsStateStore, TwilioSmsInput, twiml
from bot.channels.sms_text import SMS_MAX_CHARS
from bot.devtools.twilio_requests import TEST_AUTH_TOKEN, new_phone, new_sid, post_sms, sign, twilio_params
from bot.settings import clinic_settings, fill_placeholders
from bot.vocabulary import SMS_OPTED_OUT_KEY
from tests.channels.fake_bot import EMERGENCY, FakeBot
from tests.channels.local_server import LocalChannelServer

pytestmark = pytest.mark.server


@pytest.fixture()
def bot():
    return FakeBot()


@pytest.fixture()
def server(tmp_path, bot):
    state = SmsStateStore(f"sqlite:///{tmp_path / 'sms.db'}", redis_url="")
    channel = TwilioSmsInput(auth_token=TEST_AUTH_TOKEN, state=state, timeout_s=1.5)
    with LocalChannelServer(channel, bot) as running:
        running.webhook = f"{running.url}/webhooks/sms/webhook"
        running.state = state
        yield running


def test_a_signed_message_reaches_the_bot_and_gets_twiml(server, bot):
    phone = new_phone()
    reply = post_sms(server.webhook, twilio_params(phone, "can i eat before"))
    assert reply.status == 200
    assert reply.messages == ["channel=sms you said: can i eat before (16 chars)"]
    assert len(bot.received) == 1
    message = bot.received[0]
    assert message.sender_id == phone and message.input_channel == "sms" and message.text == "can i eat before"


@pytest.mark.parametrize("signature", [None, "", "bm90IGEgc2lnbmF0dXJl", "forged-by-wrong-token"])
def test_unsigned_or_forged_requests_get_403_and_reach_nothing(server, bot, signature):
    params = twilio_params(new_phone(), "hello")
    if signature == "forged-by-wrong-token":
        signature = sign(server.webhook, params, token="not-the-token-000000000000000000")
    reply = post_sms(server.webhook, params, signature=signature)
    assert reply.status == 403
    assert bot.received == []
    # nothing recorded: the same MessageSid, properly signed, is still new
    assert post_sms(server.webhook, params).messages


def test_a_tampered_body_fails_the_signature(server, bot):
    params = twilio_params(new_phone(), "hello")
    signature = sign(server.webhook, params)
    reply = post_sms(server.webhook, {**params, "Body": "STOP"}, signature=signature)
    assert reply.status == 403 and bot.received == []


def test_proxy_headers_are_honoured_for_the_signed_url(server, bot):
    public = "https://clinic.example.org/webhooks/sms/webhook"
    params = twilio_params(new_phone(), "hello")
    reply = post_sms(
        server.webhook, params, signature=sign(public, params),
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "clinic.example.org"},
    )
    assert reply.status == 200 and len(bot.received) == 1


def test_configured_webhook_url_is_used(tmp_path, bot):
    public = "https://sms.clinic.example/hook?clinic=riverside"
    state = SmsStateStore(f"sqlite:///{tmp_path / 'sms.db'}", redis_url="")
    channel = TwilioSmsInput(auth_token=TEST_AUTH_TOKEN, webhook_url=public, state=state)
    with LocalChannelServer(channel, bot) as running:
        params = twilio_params(new_phone(), "hello")
        url = f"{running.url}/webhooks/sms/webhook"
        assert post_sms(url, params, signature=sign(public, params)).status == 200
        assert post_sms(url, params, signature=sign(url, params)).status == 403


def test_without_an_auth_token_everything_is_refused(tmp_path, bot):
    channel = TwilioSmsInput(auth_token=None, state=SmsStateStore(f"sqlite:///{tmp_path / 's.db'}", redis_url=""))
    with LocalChannelServer(channel, bot) as running:
        url = f"{running.url}/webhooks/sms/webhook"
        params = twilio_params(new_phone(), "hello")
        assert post_sms(url, params, signature=sign(url, params, "")).status == 403
    assert bot.received == []


def test_duplicate_message_sid_is_answered_once(server, bot):
    params = twilio_params(new_phone(), "what happens during it")
    first = post_sms(server.webhook, params)
    second = post_sms(server.webhook, params)
    assert first.messages and second.status == 200 and second.messages == []
    assert ET.fromstring(second.body).tag == "Response"
    assert len(bot.received) == 1


def test_stop_start_help(server, bot):
    phone = new_phone()
    settings = clinic_settings()
    stop = post_sms(server.webhook, twilio_params(phone, "STOP"))
    assert "START" in stop.text and settings.clinic_phone in stop.text
    assert post_sms(server.webhook, twilio_params(phone, "stop")).messages == []  # confirmed only once
    assert post_sms(server.webhook, twilio_params(phone, "can i drive home")).messages == []  # silent
    help_reply = post_sms(server.webhook, twilio_params(phone, "help")).text
    assert settings.clinic_name in help_reply and settings.clinic_phone in help_reply
    start = post_sms(server.webhook, twilio_params(phone, "Start"))
    assert "STOP" in start.text
    assert post_sms(server.webhook, twilio_params(phone, "can i drive home")).messages
    # keywords never reach the bot; the text sent while opted out does, marked, and its answer is dropped
    assert [m.text for m in bot.received] == ["can i drive home", "can i drive home"]
    assert [bool(m.metadata.get(SMS_OPTED_OUT_KEY)) for m in bot.received] == [True, False]
    assert server.state.is_opted_out(phone) is False


@pytest.mark.parametrize("word", ["STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"])
def test_every_opt_out_keyword(server, bot, word):
    phone = new_phone()
    assert post_sms(server.webhook, twilio_params(phone, word)).messages
    assert server.state.is_opted_out(phone)
    yes = post_sms(server.webhook, twilio_params(phone, "yes"))  # YES opts back in only after an opt-out
    assert "STOP" in yes.text and not server.state.is_opted_out(phone)
    assert post_sms(server.webhook, twilio_params(phone, "yes")).text.startswith("channel=sms")


def test_opt_out_survives_a_restart(tmp_path, bot):
    url = f"sqlite:///{tmp_path / 'sms.db'}"
    phone = new_phone()
    SmsStateStore(url, redis_url="").set_opted_out(phone, True)
    assert SmsStateStore(url, redis_url="").is_opted_out(phone)
    store = SmsStateStore(url, redis_url="")
    assert store.claim("SM1") and not SmsStateStore(url, redis_url="").claim("SM1")


def test_a_sentence_containing_stop_is_a_question(server, bot):
    reply = post_sms(server.webhook, twilio_params(new_phone(), "should i stop my aspirin"))
    assert reply.text.startswith("channel=sms") and len(bot.received) == 1


def test_empty_body_gets_a_prompt_without_the_bot(server, bot):
    assert "type your question" in post_sms(server.webhook, twilio_params(new_phone(), "")).text
    assert "type your question" in post_sms(server.webhook, twilio_params(new_phone(), "   \n ")).text
    picture = post_sms(server.webhook, twilio_params(new_phone(), "", NumMedia="1"))
    assert "only read text" in picture.text
    assert bot.received == []


def test_a_very_long_body_is_processed(server, bot):
    body = "please help " * 250
    reply = post_sms(server.webhook, twilio_params(new_phone(), body))
    assert reply.status == 200 and reply.messages
    assert len(bot.received) == 1


def test_long_replies_are_split_into_messages_of_at_most_320(server, bot):
    reply = post_sms(server.webhook, twilio_params(new_phone(), "a long answer please"))
    assert len(reply.messages) > 1
    assert all(len(m) <= SMS_MAX_CHARS for m in reply.messages)
    assert reply.messages[0].endswith(f"(1/{len(reply.messages)})")


def test_markup_is_plain_and_xml_escaped(server, bot):
    reply = post_sms(server.webhook, twilio_params(new_phone(), "markup"))
    assert "&amp;" in reply.body and "&lt;tags&gt;" not in reply.text
    assert reply.messages == ['Bold & "quotes"\nReply: Yes']


def test_seek_care_text_is_sent_and_custom_payload_dropped(server, bot):
    reply = post_sms(server.webhook, twilio_params(new_phone(), "my leg gave out"))
    assert reply.messages == [fill_placeholders(EMERGENCY)]
    assert "seek_care" not in reply.text


def test_a_slow_bot_gets_the_safe_reply_in_time(server, bot):
    bot.delay_s = 5
    reply = post_sms(server.webhook, twilio_params(new_phone(), "hello"), timeout=4.5)
    assert clinic_settings().clinic_phone in reply.text


def test_twiml_escapes():
    assert twiml([]) == '<?xml version="1.0" encoding="UTF-8"?><Response />'
    assert "<Message>a &lt;b&gt; &amp; c</Message>" in twiml(["a <b> & c"])


def test_sid_store_keeps_first_delivery_only(tmp_path):
    store = SmsStateStore(f"sqlite:///{tmp_path / 'x.db'}", redis_url="")
    sid = new_sid()
    assert store.claim(sid) is True
    assert store.claim(sid) is False
