"""Hot backups: applications whose files are never read as files, captured by their own tools.

``stream`` runs a dump tool and feeds its stdout through the chunker into the repository (no
temporary file, memory bounded by the session's in-flight budget) and places the result as a
regular file node under the snapshot's virtual ``/.shadowvault/`` directory. ``postgresql`` and
``mariadb`` know their tools (dump, verify, list, restore); ``credentials`` hands passwords to
them through private files, never argv; ``dumps`` runs every server of a set inside a backup
session; ``restore`` pipes a stored dump back into its server.
"""
