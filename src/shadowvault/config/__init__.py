"""config (to be described)."""
