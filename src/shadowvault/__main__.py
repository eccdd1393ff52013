"""``python -m shadowvault`` runs the command-line interface (see ``shadowvault.launcher``)."""

from shadowvault.launcher import main

raise SystemExit(main())
