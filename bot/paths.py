"""Project locations, so every process finds data files the same way."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
KNOWLEDGE_DIR = Path(os.environ.get("KNOWLEDGE_DIR", PROJECT_ROOT / "knowledge"))
VAR_DIR = Path(os.environ.get("VAR_DIR", PROJECT_ROOT / "var"))
