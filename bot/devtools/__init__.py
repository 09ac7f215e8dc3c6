"""Harness shared by the tests and the bench scripts: start the real bot, talk Socket.IO, post signed SMS.

Development only: nothing the Rasa process or the action server runs imports this package.
"""
