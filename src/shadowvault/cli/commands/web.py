"""`shadowvault web [--listen HOST:PORT] [--token-file FILE]`: the local, read-only web page."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from shadowvault.engine.activity import log_path
from shadowvault.engine.browse import SnapshotReader
from shadowvault.errors import UsageError

from ..app import App, state_dir

HELP = "serve a read-only status page and snapshot browser (loopback only unless given a token)"
DEFAULT_LISTEN = "127.0.0.1:8484"
_TOKEN = re.compile(r"[A-Za-z0-9._~+/=-]{16,}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """--listen and --token-file."""
    p.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT", help=f"default {DEFAULT_LISTEN}")
    p.add_argument(
        "--token-file",
        metavar="FILE",
        help="file whose first line is the access token; required for an address that is not loopback",
    )


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` → (host, port); ``UsageError`` otherwise."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--listen {text!r}: write HOST:PORT, e.g. {DEFAULT_LISTEN}")
    return host, int(port)


def read_token(path: Path) -> str:
    """The token: the file's first line, at least 16 characters of letters, digits and ._~+/=-."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--token-file {path}: cannot read it ({e})") from None
    token = lines[0].strip() if lines else ""
    if not _TOKEN.fullmatch(token):
        raise UsageError(
            f"--token-file {path}: the first line must be a token of at least 16 letters, digits or "
            "._~+/=- (e.g. from `openssl rand -base64 32`)"
        )
    return token


def run(app: App, args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    # Imported here: the server stack is only needed by this command.
    import uvicorn

    from shadowvault.web.app import WebSource, create_app
    from shadowvault.web.guard import is_loopback

    host, port = parse_listen(args.listen)
    token = read_token(Path(args.token_file)) if args.token_file else None
    if token is None and not is_loopback(host):
        raise UsageError(
            f"--listen {args.listen} is reachable from other machines: give --token-file FILE "
            "(every request must then carry the token), or listen on 127.0.0.1"
        )
    repo = app.open_repo()
    try:
        source = WebSource(
            app.config(),
            log_path(state_dir(), str(repo.config["id"])),
            state_dir() / "checks",
            SnapshotReader(repo),
        )
        shown_host = f"[{host}]" if ":" in host else host
        app.info(f"serving http://{shown_host}:{port}/ (read-only; Ctrl-C stops)")
        config = uvicorn.Config(
            create_app(source, token=token),
            host=host,
            port=port,
            lifespan="off",
            log_level="warning",
            access_log=False,
            server_header=False,
        )
        uvicorn.Server(config).run()
    finally:
        repo.close()
    return 0
