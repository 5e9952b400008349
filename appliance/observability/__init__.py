"""Metrics and logs: every Prometheus metric is defined once, every log record names its call."""
