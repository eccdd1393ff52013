"""openfiles/platform (to be described)."""
