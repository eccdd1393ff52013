"""repo (to be described)."""
