"""Spine-clinic patient assistant: shared code for the Rasa process, the action server and staff tools."""
