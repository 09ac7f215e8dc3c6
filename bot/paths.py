"""Project locations, so every process finds data files the same way (read once, at import)."""

from __future__ import annotations

from bot.config import PROJECT_ROOT, knowledge_dir, var_dir

__all__ = ["PROJECT_ROOT", "KNOWLEDGE_DIR", "VAR_DIR"]

KNOWLEDGE_DIR = knowledge_dir()
VAR_DIR = var_dir()
