"""bot/config.py: one default per variable, one error style for unusable values."""

from __future__ import annotations

import pytest

from bot import config


def test_defaults_when_nothing_is_set(monkeypatch, tmp_path):
    for name in ("REDIS_URL", "REDIS_LOCK_PREFIX", "BOT_REPLY_TIMEOUT_S", "REVIEW_PORT", "REVIEW_COOKIE_SECURE",
                 "REVIEW_TRUST_PROXY", "TRACKER_DB_URL", "SMS_STATE_DB_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    assert config.redis_url() is None
    assert config.redis_lock_prefix() == "spineclinic"
    assert config.reply_timeout_s() == 10.0
    assert config.review_port() == 8081
    assert config.review_cookie_secure() is True and config.review_trust_proxy() is False
    assert config.tracker_db_url() == f"sqlite:///{tmp_path / 'tracker.db'}"
    assert config.sms_state_db_url() == config.tracker_db_url()


def test_blank_values_count_as_unset(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "  ")
    monkeypatch.setenv("BOT_REPLY_TIMEOUT_S", "")
    assert config.redis_url() is None
    assert config.reply_timeout_s() == 10.0


@pytest.mark.parametrize(("name", "value", "reader"), [
    ("BOT_REPLY_TIMEOUT_S", "soon", config.reply_timeout_s),
    ("BOT_REPLY_TIMEOUT_S", "0.1", config.reply_timeout_s),
    ("REVIEW_PORT", "80a", config.review_port),
    ("REVIEW_COOKIE_SECURE", "maybe", config.review_cookie_secure),
    ("REDIS_LOCK_PREFIX", "spine_clinic", config.redis_lock_prefix),
    ("REVIEW_TIMEZONE", "Mars/Olympus", config.review_timezone),
])
def test_unusable_values_are_refused_the_same_way(monkeypatch, name, value, reader):
    monkeypatch.setenv(name, value)
    with pytest.raises(config.ConfigError, match=rf"^environment variable {name}='{value}': expected "):
        reader()


def test_clinic_overrides_come_from_the_given_mapping():
    assert config.clinic_overrides({"CLINIC_PHONE": " 555-0100 ", "CLINIC_NAME": ""}) == {"clinic_phone": "555-0100"}
