"""Clinic settings: one data file (knowledge/clinic.yml), each value overridable by an environment variable."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

from bot.config import CLINIC_SETTING_VARIABLES, clinic_overrides
from bot.datafile import DataFileError, read_yaml, require_text
from bot.paths import KNOWLEDGE_DIR


@dataclass(frozen=True)
class ClinicSettings:
    clinic_name: str
    clinic_phone: str
    clinic_hours: str
    emergency_number: str
    clinic_website: str

    def as_placeholders(self) -> dict[str, str]:
        """Values for `{clinic_phone}`-style placeholders in answers and responses."""
        return asdict(self)


def load_clinic_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> ClinicSettings:
    """Read the settings file, apply environment overrides (or those in `environ`), and validate every field."""
    path = Path(path or KNOWLEDGE_DIR / "clinic.yml")
    overrides = clinic_overrides(environ)
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise DataFileError(path, "must be a mapping of setting names to values")
    unknown = sorted(set(raw) - set(CLINIC_SETTING_VARIABLES))
    if unknown:
        raise DataFileError(path, f"unknown setting(s): {', '.join(unknown)}", field=unknown[0])
    values = {}
    for field, env_name in CLINIC_SETTING_VARIABLES.items():
        value = overrides.get(field) or raw.get(field)
        source = f"environment variable {env_name}" if field in overrides else None
        try:
            values[field] = require_text(path, None, field, None if value is None else str(value), max_length=120)
        except DataFileError as error:
            if source:
                raise DataFileError(path, f"{error} (value from {source})", field=field) from error
            raise
    return ClinicSettings(**values)


@lru_cache(maxsize=1)
def clinic_settings() -> ClinicSettings:
    """Settings for this process, loaded once."""
    return load_clinic_settings()


def fill_placeholders(text: str, settings: ClinicSettings | None = None) -> str:
    """Replace `{clinic_phone}`-style placeholders; unknown braces are left as they are."""
    settings = settings or clinic_settings()
    for key, value in settings.as_placeholders().items():
        text = text.replace("{" + key + "}", value)
    return text
