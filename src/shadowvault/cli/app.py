"""The App object: the single output path of every command, plus repository/config resolution.

Commands receive one ``App`` (hatch's Application pattern) and never print on
their own. Text goes through ``rich`` to stderr/stdout; with ``--json`` every
message is one JSON object per line on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs
from rich.console import Console

from shadowvault import interrupts, kdfcache
from shadowvault.errors import ConfigError, RepoNotFoundError
from shadowvault.repo import DEFAULT_PACK_SIZE, Backend, LocalBackend, Repository
from shadowvault.repo.backends.open import open_backend
from shadowvault.repo.backends.options import BackendOptions
from shadowvault.repo.location import LocalLocation, parse_location

from .password import get_password

if TYPE_CHECKING:
    from shadowvault.config import Config

ENV_REPOSITORY = "SHADOWVAULT_REPOSITORY"
ENV_CONFIG = "SHADOWVAULT_CONFIG"


def data_dir() -> Path:
    """Where the zero-configuration repository and its password file live."""
    return Path(platformdirs.user_data_dir("shadowvault"))


def state_dir() -> Path:
    """Where the activity log lives."""
    return Path(platformdirs.user_state_dir("shadowvault"))


def default_repo_path() -> Path:
    """The embedded default repository (zero-configuration first run)."""
    return data_dir() / "repo"


def default_password_file() -> Path:
    """The generated password file of the default repository."""
    return data_dir() / "password"


class App:
    """Owns the console, the output format and how the repository is found."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.json: bool = bool(getattr(args, "json", False))
        self.quiet: bool = bool(getattr(args, "quiet", False))
        self.verbose: int = int(getattr(args, "verbose", 0) or 0)
        # No emoji codes or highlighting: file names like "a:smile:b" must print as they are.
        self.out = Console(highlight=False, soft_wrap=True, emoji=False)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
        self._config: Config | None = None
        self._config_loaded = False

    # ----- output -------------------------------------------------------------------------------

    def print(self, text: str = "", **kw: Any) -> None:
        """Normal output (suppressed in --json mode, where data goes through ``emit``)."""
        if not self.json:
            self.out.print(text, markup=False, **kw)

    def info(self, text: str) -> None:
        """Status messages to stderr (not part of the data a script might parse)."""
        if not self.quiet:
            self.err.print(text, markup=False)

    def warn(self, text: str) -> None:
        """A warning line on stderr (also in --json mode, where it is a JSON line on stdout)."""
        if self.json:
            self.emit({"message_type": "warning", "message": text})
        else:
            self.err.print(f"warning: {text}", markup=False, style="yellow")

    def emit(self, obj: Any) -> None:
        """One JSON document on its own line."""
        sys.stdout.write(json.dumps(obj, default=str) + "\n")
        sys.stdout.flush()

    @property
    def interactive(self) -> bool:
        """A progress display is shown only to a person at a terminal."""
        return not self.json and not self.quiet and self.err.is_terminal

    # ----- configuration ------------------------------------------------------------------------

    def config(self) -> Config | None:
        """The configuration file if one is given or exists at the default place; else None."""
        if not self._config_loaded:
            # Imported here so commands that never read the configuration do not pay for it.
            from shadowvault.config import load_config

            self._config_loaded = True
            given = getattr(self.args, "config", None) or os.environ.get(ENV_CONFIG)
            if given:
                self._config = load_config(Path(given))
            else:
                default = Path(platformdirs.user_config_dir("shadowvault")) / "config.toml"
                self._config = load_config(default) if default.exists() else None
        return self._config

    def repo_location(self) -> tuple[str, Path | None, bool]:
        """(repository location as given, password file or None, is the zero-config default).

        The location stays a string: ``sftp://host//srv`` must not be normalised like a path.
        """
        pw_file = Path(self.args.password_file) if getattr(self.args, "password_file", None) else None
        given = getattr(self.args, "repo", None) or os.environ.get(ENV_REPOSITORY)
        if given:
            return given, pw_file, False
        cfg = self.config()
        if cfg is not None and cfg.repository.path:
            cfg_pw = Path(cfg.repository.password_file) if cfg.repository.password_file else None
            return str(cfg.repository.path), pw_file or cfg_pw, False
        return str(default_repo_path()), pw_file or default_password_file(), True

    def local_repo_dir(self) -> str | None:
        """The repository's directory when it is on this machine (to keep it out of backups)."""
        loc = parse_location(self.repo_location()[0])
        return loc.path if isinstance(loc, LocalLocation) else None

    def backend(self, location: str) -> Backend:
        """The backend of a location (local path, sftp:, s3:, rest:); bad ones are a usage error."""
        opts = BackendOptions.from_env(
            os.environ,
            retry_report=self._report_retry,
            limit_upload=int(getattr(self.args, "limit_upload", 0) or 0),
            limit_download=int(getattr(self.args, "limit_download", 0) or 0),
        )
        return open_backend(parse_location(location), opts)

    def _report_retry(self, what: str, exc: BaseException, delay: float) -> None:
        # Backend messages never carry credentials (locations are shown without passwords).
        self.warn(f"{what} failed ({exc}); retrying in {delay:.1f} s")

    @property
    def password_command(self) -> str | None:
        """``--password-command`` (the environment variable is read by ``get_password``)."""
        value = getattr(self.args, "password_command", None)
        return str(value) if value else None

    def open_repo(self, *, create_default: bool = False, pack_size: int = DEFAULT_PACK_SIZE) -> Repository:
        """Open the repository; with ``create_default`` the zero-config repository is made on first use."""
        location, pw_file, is_default = self.repo_location()
        path = Path(location)
        if is_default and create_default and not (path / "config").exists():
            self._create_default_repo(path)
        if is_default and not (path / "config").exists():
            raise RepoNotFoundError(
                f"no repository configured and none at the default place {path}: pass --repo, set "
                f"{ENV_REPOSITORY}, or run `shadowvault backup PATH` once to create the default one"
            )
        password = get_password(
            pw_file if (pw_file and pw_file.exists()) or not is_default else None,
            command=self.password_command,
        )
        repo = Repository.open(self.backend(location), password, pack_size=pack_size)
        self.remember_key(location, repo)
        return repo

    @staticmethod
    def remember_key(location: str, repo: Repository) -> None:
        """For a remote repository: keep its key's scrypt salt and parameters, so the next command
        derives the key while it imports and connects (``kdfcache``)."""
        if repo.key_file_json is not None and kdfcache.is_remote_location(location):
            kdfcache.remember(location, repo.key_file_json)

    def _create_default_repo(self, path: Path) -> None:
        pw_file = default_password_file()
        pw_file.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(pw_file.parent, 0o700)
        if not pw_file.exists():
            password = secrets.token_urlsafe(32)
            with interrupts.held():  # never an empty password file
                fd = os.open(pw_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write(password + "\n")
        password = pw_file.read_text().splitlines()[0]
        Repository.init(LocalBackend(path), password).close()
        self.info(f"created the default repository at {path}")
        self.info(
            f"its password is in {pw_file} (mode 0600). Keep a copy of that file somewhere safe: "
            "without it no one, including you, can read these backups."
        )

    def fail_config(self, message: str) -> ConfigError:
        """A configuration error to raise (exit code 2)."""
        return ConfigError(message)
