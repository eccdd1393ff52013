"""engine/hotbackup (to be described)."""
