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
