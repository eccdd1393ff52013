"""cli (to be described)."""
