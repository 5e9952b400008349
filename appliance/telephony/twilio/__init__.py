"""Twilio calls: signed webhooks, Media Streams as a CallLine, and the REST API for transfers."""
