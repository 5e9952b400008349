"""The safety screens: what a caller may not get from the desk, and the sets they are tested on."""
