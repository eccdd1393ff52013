"""repo/files (to be described)."""
