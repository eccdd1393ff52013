"""``python -m shadowvault`` runs the command-line interface."""

from shadowvault.cli import main

raise SystemExit(main())
