"""``python -m shadowvault`` runs the command-line interface."""

# Signals are handled from here on, before anything heavy is imported (see interrupts).
from shadowvault import interrupts

interrupts.install(program=True)

from shadowvault.cli import main  # noqa: E402

raise SystemExit(main())
