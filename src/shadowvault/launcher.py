"""The ``shadowvault`` program's entry point (console script and ``python -m shadowvault``).

Process-wide setup belongs to the program, not to an import: ``import shadowvault.cli`` reads no
``sys.argv`` and starts no thread. Here, before the CLI's heavy imports (~0.3 s), SIGINT/SIGTERM
start ending the program cleanly, and the key's scrypt (hashlib, GIL released) starts in a daemon
thread when the repository and password are known from argv and the environment
(``kdfcache.prefetch_for_command``), so it runs while those imports load.
"""

from __future__ import annotations

import gc
import os
import sys


def main() -> int:
    """Run the command line of this process; returns the exit code."""
    from shadowvault import interrupts, kdfcache

    interrupts.install(program=True)
    kdfcache.prefetch_for_command(sys.argv[1:], os.environ)
    from shadowvault.cli import main as cli_main

    try:
        return cli_main()
    finally:
        # The interpreter's shutdown runs the cycle collector over every object once more before it
        # frees the modules; after a backup or a restore that is the whole index and all the session
        # made: 0.16-0.2 s after a no-change backup of 20,000 files (measured with and without).
        # Frozen objects are left out of that collection and still freed by reference counting as
        # the modules go; every file the program writes is closed (and synced) before this point.
        gc.freeze()
