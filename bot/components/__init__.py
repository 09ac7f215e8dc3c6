"""Custom Rasa graph components, one per module."""
