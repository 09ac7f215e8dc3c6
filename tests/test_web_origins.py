"""bot.config.web_allowed_origins: the sites whose pages may use the web chat, as browsers write origins."""

from __future__ import annotations

import pytest

from bot import config
from bot.channels.socketio import ClinicSocketIOInput


def test_the_default_is_the_demo_pages_own_origins_never_any_site(monkeypatch):
    monkeypatch.delenv("WEB_ALLOWED_ORIGINS", raising=False)
    monkeypatch.delenv("WEB_PORT", raising=False)
    assert config.web_allowed_origins() == ["http://localhost:8080", "http://127.0.0.1:8080"]
    monkeypatch.setenv("WEB_PORT", "9090")
    assert config.web_allowed_origins() == ["http://localhost:9090", "http://127.0.0.1:9090"]


def test_origins_are_written_as_browsers_send_them(monkeypatch):
    monkeypatch.setenv("WEB_ALLOWED_ORIGINS", " https://WWW.Clinic.example:443/, http://localhost:3000 http://[::1]:80,"
                                              "https://www.clinic.example")
    assert config.web_allowed_origins() == ["https://www.clinic.example", "http://localhost:3000", "http://[::1]"]


def test_any_site_only_when_asked_for(monkeypatch):
    monkeypatch.setenv("WEB_ALLOWED_ORIGINS", "*")
    assert config.web_allowed_origins() == ["*"]
    channel = ClinicSocketIOInput.from_credentials({})
    assert channel.cors_allowed_origins == "*"  # engine.io's spelling of any origin


@pytest.mark.parametrize("value", ["clinic.example", "https://clinic.example/chat", "ftp://clinic.example",
                                   "https://clinic.example:99999", "*, https://clinic.example", "https://u:p@x.example"])
def test_unusable_values_are_refused(monkeypatch, value):
    monkeypatch.setenv("WEB_ALLOWED_ORIGINS", value)
    with pytest.raises(config.ConfigError, match="WEB_ALLOWED_ORIGINS"):
        config.web_allowed_origins()


def test_the_channel_reads_them_when_credentials_name_none(monkeypatch):
    monkeypatch.setenv("WEB_ALLOWED_ORIGINS", "https://www.clinic.example")
    assert ClinicSocketIOInput.from_credentials({}).cors_allowed_origins == ["https://www.clinic.example"]
    given = ClinicSocketIOInput.from_credentials({"cors_allowed_origins": ["http://127.0.0.1:1234"]})
    assert given.cors_allowed_origins == ["http://127.0.0.1:1234"]
