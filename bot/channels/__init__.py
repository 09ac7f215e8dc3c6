"""Input channels: REST (integrations, evaluation), socket.io (website), Twilio SMS.

Importing this package (credentials.yml does, before Rasa loads the model) makes patient text that
starts with `/` go through NLU and triage like any text (bot.literal_slash).
"""

from bot import literal_slash

literal_slash.install()
