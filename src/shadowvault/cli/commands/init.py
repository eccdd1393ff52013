"""`shadowvault init`: create a new repository."""

from __future__ import annotations

import argparse
from pathlib import Path

from shadowvault.errors import UsageError
from shadowvault.repo import Repository

from ..app import App
from ..password import get_password

HELP = "create a new repository"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """No options beyond the common ones (--repo, --password-file)."""


def run(app: App, args: argparse.Namespace) -> int:
    """Create the repository and print its id."""
    location, pw_file, is_default = app.repo_location()
    if is_default and not args.repo:
        raise UsageError("init needs --repo PATH (or $SHADOWVAULT_REPOSITORY)")
    backend = app.backend(location)  # a bad location is refused before the password is asked
    password = get_password(Path(pw_file) if pw_file else None, confirm=True, command=app.password_command)
    repo = Repository.init(backend, password)
    app.remember_key(location, repo)
    repo_id = str(repo.config["id"])
    where = repo.location()  # shown without any password
    repo.close()
    if app.json:
        app.emit({"message_type": "initialized", "id": repo_id, "repository": where})
    else:
        app.print(f"created repository {repo_id[:10]} at {where}")
        app.print("Keep the password safe: without it the data in this repository cannot be read.")
    return 0
