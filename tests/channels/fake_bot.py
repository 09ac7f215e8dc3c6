"""A stand-in for Rasa's on_new_message, for channel tests that run without a trained model.

It answers through the message's output channel the way Rasa does (response dicts with text and
an optional custom payload), using the domain's own seek-care wording.
"""

from __future__ import annotations

import asyncio

from bot.settings import fill_placeholders

EMERGENCY = (
    "This could be serious. Get help right now: call {emergency_number} or go to the nearest emergency room. "
    "Do not wait for a reply here.\n\nThen let {clinic_name} know at {clinic_phone}.\n\n"
    "This chat is not watched for emergencies."
)
LONG_REPLY = " ".join(
    f"Sentence number {i} tells you one more thing about getting ready for your injection." for i in range(12)
)
DRIVING = (
    "Yes. Plan for an adult to drive you home. You may get a relaxing medicine, and your leg or arm may feel "
    "numb for a few hours.\n\nBefore you come:\n- arrange your driver\n- bring your medicine list\n\n"
    "Questions? Call {clinic_phone}."
)


class FakeBot:
    def __init__(self) -> None:
        self.received = []
        self.delay_s = 0.0

    async def __call__(self, message) -> None:
        self.received.append(message)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        text = (message.text or "").lower()
        if "long answer" in text:
            reply = {"text": LONG_REPLY}
        elif "markup" in text:
            reply = {"text": "**Bold** & <tags> \"quotes\"", "buttons": [{"title": "Yes", "payload": "/affirm"}]}
        elif "leg gave out" in text or "groin" in text:
            reply = {"text": fill_placeholders(EMERGENCY), "custom": {"kind": "seek_care", "level": "emergency"}}
        elif "drive" in text:
            reply = {"text": fill_placeholders(DRIVING)}
        elif "<" in text:
            reply = {"text": "<img src=x onerror=alert(1)> is shown as text"}
        else:
            reply = {"text": f"channel={message.output_channel.name()} you said: {message.text} ({len(text)} chars)"}
        await message.output_channel.send_response(message.sender_id, reply)
