"""What the box keeps: call records, caller memory, session state, caches."""
