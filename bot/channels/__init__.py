"""Input channels: REST (integrations, evaluation), socket.io (website), Twilio SMS."""
