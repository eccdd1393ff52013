"""`shadowvault key list|add|passwd|remove [ID]`: manage the passwords of a repository."""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import datetime
from pathlib import Path

from shadowvault.errors import UsageError
from shadowvault.repo import FileType
from shadowvault.repo.files.key import KeyFile
from shadowvault.repo.keys import add_key, key_for_password, list_keys, remove_key

from ..app import App
from ..password import get_password, read_password_file

HELP = "list, add, change or remove the repository's passwords (keys)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Action, key id for remove, and where the new password comes from."""
    p.add_argument("action", choices=("list", "add", "passwd", "remove"))
    p.add_argument("id", nargs="?", metavar="ID", help="key id or prefix (remove)")
    p.add_argument(
        "--new-password-file", metavar="FILE", help="the new password (add, passwd); default: prompt twice"
    )


def _new_password(args: argparse.Namespace) -> str:
    if args.new_password_file:
        return read_password_file(Path(args.new_password_file))
    if not sys.stdin.isatty():
        raise UsageError("no new password: pass --new-password-file (no terminal to prompt on)")
    pw = getpass.getpass("new password: ")
    if getpass.getpass("enter the new password again: ") != pw:
        raise UsageError("the two passwords differ: run the command again")
    return pw


def run(app: App, args: argparse.Namespace) -> int:
    """List keys (the current one marked), or change them under an exclusive lock."""
    if args.action != "remove" and args.id:
        raise UsageError(f"key {args.action} takes no ID")
    if args.action == "remove" and not args.id:
        raise UsageError("key remove needs the ID of the key (see `key list`)")
    new = _new_password(args) if args.action in ("add", "passwd") else None
    _, pw_file, is_default = app.repo_location()
    repo = app.open_repo()
    try:
        # The password again, to tell which key file is this session's (the open does not say).
        password = get_password(
            pw_file if (pw_file and pw_file.exists()) or not is_default else None,
            command=app.password_command,
        )
        current = key_for_password(repo, password)
        if args.action == "list":
            return _list(app, repo_keys=list_keys(repo), current=current)
        with repo.lock(exclusive=True):
            if args.action == "add":
                assert new is not None
                app.print(f"saved new key {add_key(repo, new)[:8]}")
            elif args.action == "passwd":
                assert new is not None
                added = add_key(repo, new)  # first the new key, then the old one goes
                if current is not None:
                    repo.remove_file(FileType.KEY, current)
                app.print(f"saved new key {added[:8]}, removed the old key {(current or '-')[:8]}")
            else:
                app.print(f"removed key {remove_key(repo, args.id, current=current)[:8]}")
    finally:
        repo.close()
    return 0


def _list(app: App, repo_keys: list[tuple[str, KeyFile]], current: str | None) -> int:
    # restic's columns: " ID  User  Host  Created", the session's key marked with "*".
    if app.json:
        app.emit(
            [
                {
                    "current": name == current,
                    "id": name,
                    "userName": kf.username,
                    "hostName": kf.hostname,
                    "created": datetime.fromtimestamp(kf.created / 1e9).astimezone().isoformat(),
                }
                for name, kf in repo_keys
            ]
        )
        return 0
    app.print(f" {'ID':<10} {'User':<12} {'Host':<16} Created")
    for name, kf in repo_keys:
        mark = "*" if name == current else " "
        when = datetime.fromtimestamp(kf.created / 1e9).strftime("%Y-%m-%d %H:%M:%S")
        app.print(f"{mark}{name[:8]:<10} {kf.username:<12} {kf.hostname:<16} {when}")
    return 0
