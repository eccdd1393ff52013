"""cli/commands (to be described)."""
