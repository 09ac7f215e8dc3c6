"""Which channel owns a conversation id (bot/channels/ownership.py), on a real Rasa SQL tracker store."""

from __future__ import annotations

import asyncio

import pytest
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.events import UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot.channels.ownership import ConversationOwners, reserved_channel
from bot.vocabulary import CHANNEL_REST, CHANNEL_SMS, CHANNEL_WEB


@pytest.mark.parametrize("sender", ["+15551234567", "+44 20 7946 0958", "whatsapp:+15551234567", "tel:+1 (555) 123-4567"])
def test_phone_numbers_belong_to_sms(sender):
    assert reserved_channel(sender) == CHANNEL_SMS


@pytest.mark.parametrize("sender", ["12345", "15551234567", "user@example.org", "3f2b8c0d9e6a4b1c8d7e6f5a4b3c2d1e",
                                    "eval 0001 / batch-2", "+1", "+abc"])
def test_free_form_ids_are_reserved_for_nobody(sender):
    assert reserved_channel(sender) is None


def store_with(tmp_path, conversations: dict[str, list[str]]) -> str:
    """A tracker database written by Rasa's own SQLTrackerStore: sender -> input channels of its user messages."""
    db = tmp_path / "tracker.db"
    store = SQLTrackerStore(dialect="sqlite", db=str(db))
    for sender, channels in conversations.items():
        tracker = DialogueStateTracker(sender, slots=[])
        for number, channel in enumerate(channels):
            tracker.update(UserUttered(f"message {number}", input_channel=channel))
        asyncio.run(store.save(tracker))
    return f"sqlite:///{db}"


def test_the_first_patient_message_decides_the_owner(tmp_path):
    owners = ConversationOwners(store_with(tmp_path, {"web-session-0001": [CHANNEL_WEB, CHANNEL_REST], "r1": [CHANNEL_REST]}))
    assert owners.recorded_owner("web-session-0001") == CHANNEL_WEB
    assert owners.conflict("web-session-0001", CHANNEL_REST) == CHANNEL_WEB
    assert owners.conflict("web-session-0001", CHANNEL_WEB) is None
    assert owners.conflict("r1", CHANNEL_WEB) == CHANNEL_REST
    assert owners.conflict("never-seen", CHANNEL_REST) is None


def test_the_sms_channel_always_owns_phone_numbers_even_if_rest_wrote_there_first(tmp_path):
    """A conversation written before this check (or by an attacker) cannot lock a patient out of their number."""
    owners = ConversationOwners(store_with(tmp_path, {"+15550001111": [CHANNEL_REST]}))
    assert owners.conflict("+15550001111", CHANNEL_SMS) is None
    assert owners.conflict("+15550001111", CHANNEL_REST) == CHANNEL_SMS
    assert owners.conflict("+15550001111", CHANNEL_WEB) == CHANNEL_SMS


def test_no_tracker_store_yet_means_no_owner(tmp_path):
    owners = ConversationOwners(f"sqlite:///{tmp_path / 'missing.db'}")
    assert owners.recorded_owner("anyone") is None
    assert owners.conflict("anyone", CHANNEL_REST) is None
    assert not (tmp_path / "missing.db").exists()  # looked up read-only, never created


def test_a_known_owner_is_remembered(tmp_path):
    url = store_with(tmp_path, {"r2": [CHANNEL_REST]})
    owners = ConversationOwners(url)
    assert owners.recorded_owner("r2") == CHANNEL_REST
    (tmp_path / "tracker.db").unlink()  # owners never change, so no second lookup is needed
    assert owners.recorded_owner("r2") == CHANNEL_REST
