"""fs (to be described)."""
