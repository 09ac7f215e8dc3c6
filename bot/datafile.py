"""Loading YAML data files with errors that name the file, the entry and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class DataFileError(ValueError):
    """A data file is missing, unreadable or does not match its schema."""

    def __init__(self, path: Path | str, message: str, entry: str | None = None, field: str | None = None):
        self.path = str(path)
        self.entry = entry
        self.field = field
        where = self.path
        if entry:
            where += f", entry '{entry}'"
        if field:
            where += f", field '{field}'"
        super().__init__(f"{where}: {message}")


def read_yaml(path: Path) -> Any:
    """Parse one YAML file, turning parse errors into a DataFileError naming the file."""
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except FileNotFoundError as error:
        raise DataFileError(path, "file not found") from error
    except yaml.YAMLError as error:
        raise DataFileError(path, f"not valid YAML ({error})") from error


def require_text(path: Path, entry: str | None, field: str, value: Any, max_length: int | None = None) -> str:
    """Return a non-empty string or raise naming where the bad value is."""
    if not isinstance(value, str) or not value.strip():
        raise DataFileError(path, "must be a non-empty text", entry, field)
    if max_length is not None and len(value) > max_length:
        raise DataFileError(path, f"is {len(value)} characters, the limit is {max_length}", entry, field)
    return value.strip()
