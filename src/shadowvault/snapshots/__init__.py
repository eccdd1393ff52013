"""snapshots (to be described)."""
