"""The safety screens: what the caller says and what the agent says are checked, and tools are
held to a policy."""
