"""The offline harness: recorded callers played through the whole system, and a report."""
