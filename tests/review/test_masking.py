"""Masking of patient ids and CSV formula guarding (no database needed)."""

from __future__ import annotations

import pytest

from bot.review.exports import to_csv
from bot.review.masking import csv_safe, is_phone_number, mask_sender


@pytest.mark.parametrize("sender, shown", [
    ("+15551234567", "+1•••••4567"),
    ("+447700900123", "+4•••••0123"),
    ("15551234567", "1•••••4567"),
    ("whatsapp:+15551234567", "+1•••••4567"),
    ("+1 (555) 123-4567", "+1•••••4567"),
    ("jane.doe@example.org", "j•••@example.org"),
    ("qa-tester-7", "qa-tester-7"),
    ("0c6f1e7a9b2d4e3f8a5b6c7d8e9f0a1b", "0c6f1e7a9b2d4e3f8a5b6c7…"),
    ("", ""),
    (None, ""),
])
def test_mask_sender(sender, shown):
    assert mask_sender(sender) == shown


def test_masked_numbers_never_contain_the_middle_digits():
    masked = mask_sender("+15559876543")
    assert "987" not in masked and masked.endswith("6543")
    assert is_phone_number("+15559876543") and not is_phone_number("web-session-1")


@pytest.mark.parametrize("value, safe", [
    ("=1+1", "'=1+1"), ("+1•••••4567", "'+1•••••4567"), ("-2", "'-2"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\tcmd", "'\tcmd"), ("\rcmd", "'\rcmd"), ("hello", "hello"), ("", ""), (3, 3), (0.5, 0.5),
])
def test_csv_safe(value, safe):
    assert csv_safe(value) == safe


def test_to_csv_guards_every_cell():
    text = to_csv([{"a": "=cmd|' /C calc'!A0", "b": "fine"}], ["a", "b"])
    assert text.splitlines()[1].startswith("'=cmd")


@pytest.mark.parametrize("text, shown", [
    ("call me on 555-123-4567 please", "call me on 5•••••4567 please"),
    ("my number is +1 (555) 123-4567.", "my number is +1•••••4567."),
    ("text 5551234567", "text 5•••••4567"),
    ("+44 7700 900123 after 6", "+4•••••0123 after 6"),
    ("mail jane.doe@example.org now", "mail j•••@example.org now"),
    ("since 2024-05-31 my leg is numb", "since 2024-05-31 my leg is numb"),
    ("on 31.05.2024 I took 400 mg at 10:30, pain 8/10", "on 31.05.2024 I took 400 mg at 10:30, pain 8/10"),
    ("call 911, room 12", "call 911, room 12"),
    ("", ""),
    (None, ""),
])
def test_mask_text(text, shown):
    from bot.privacy import mask_text

    assert mask_text(text) == shown


def test_masked_text_keeps_no_middle_digits_and_no_local_part():
    from bot.privacy import mask_text

    masked = mask_text("reach me at +1 555 987 6543 or at jane.roe@example.org")
    assert "987" not in masked and "6543" in masked and "jane" not in masked and "roe" not in masked
