"""Engines behind an OpenAI-compatible HTTP API: the cloud, or an inference server on the LAN.

They join the fallback chains after the local engines (`appliance.engines.fallback`).
"""
