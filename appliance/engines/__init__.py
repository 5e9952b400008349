"""Engines behind the conversation's ports: one engine per file, blocking work offloaded."""
