"""openfiles (to be described)."""
