"""Clinic settings: one file, overridable by environment variables, validated with named errors."""

from __future__ import annotations

import pytest

from bot.datafile import DataFileError
from bot.settings import fill_placeholders, load_clinic_settings


def test_defaults_come_from_the_file():
    settings = load_clinic_settings(environ={})
    assert settings.clinic_phone and settings.emergency_number


def test_environment_overrides_the_file():
    settings = load_clinic_settings(environ={"CLINIC_PHONE": "(555) 123-4567", "CLINIC_NAME": "Test Spine"})
    assert settings.clinic_phone == "(555) 123-4567"
    assert fill_placeholders("Call {clinic_name} at {clinic_phone}.", settings) == "Call Test Spine at (555) 123-4567."


def test_unknown_and_missing_settings_are_named(tmp_path):
    path = tmp_path / "clinic.yml"
    path.write_text("clinic_name: X\nclinic_phone: '1'\nclinic_hours: h\nemergency_number: '911'\nclinic_website: w\nfax: 2\n")
    with pytest.raises(DataFileError, match="clinic.yml.*fax"):
        load_clinic_settings(path, environ={})
    path.write_text("clinic_name: X\nclinic_hours: h\nemergency_number: '911'\nclinic_website: w\n")
    with pytest.raises(DataFileError, match="clinic.yml, field 'clinic_phone'"):
        load_clinic_settings(path, environ={})


def test_unknown_placeholders_are_left_alone():
    assert fill_placeholders("{not_a_setting}") == "{not_a_setting}"
