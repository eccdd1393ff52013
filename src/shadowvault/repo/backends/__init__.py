"""repo/backends (to be described)."""
