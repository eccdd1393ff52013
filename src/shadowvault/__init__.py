"""shadowvault: back up files while they are open, into restic-compatible repositories.

The curated public Python API is listed in ``__all__``; the CLI is a thin layer over it.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
