"""engine (to be described)."""
