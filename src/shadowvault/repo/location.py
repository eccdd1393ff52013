"""Repository locations as restic spells them, parsed in one place.

    /srv/repo, ./repo, local:/srv/repo       a local directory
    sftp:[user@]host:/path                   SFTP over the system ``ssh`` (path relative to home
    sftp:[user@]host:path                    when it does not start with ``/``)
    sftp://[user@]host[:port]//abs/path      URL form; a single slash is relative to home
    s3:https://host[:port]/bucket[/prefix]   any S3-compatible endpoint (``http://`` too)
    s3:host/bucket[/prefix]                  ``https://host`` (AWS: s3:s3.amazonaws.com/bucket)
    rest:http[s]://[user:pass@]host:port/[path]   restic's REST protocol (rest-server, rclone)

Anything that starts like ``word:`` with an unknown word is refused (a typo such as ``sfpt:`` must
never become a local folder of that name); a local folder whose name has a colon is written
``./name:x`` or ``local:name:x``. ``display()`` of every location hides passwords, so messages and
JSON can always use it.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field

from shadowvault.errors import UsageError

SCHEMES = ("local", "sftp", "s3", "rest")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


@dataclass(frozen=True)
class LocalLocation:
    """A directory on this machine."""

    path: str

    def display(self) -> str:
        """The path as given."""
        return self.path


@dataclass(frozen=True)
class SftpLocation:
    """A directory reached through ``ssh [user@]host [-p port] -s sftp``."""

    host: str
    path: str
    user: str | None = None
    port: int | None = None

    def display(self) -> str:
        """restic's short form (URL form when a port is given)."""
        who = f"{self.user}@{self.host}" if self.user else self.host
        if self.port is not None:
            # An absolute path gives restic's "//abs"; a relative one a single slash.
            return f"sftp://{who}:{self.port}/{self.path}"
        return f"sftp:{who}:{self.path}"


@dataclass(frozen=True)
class S3Location:
    """A bucket (and key prefix) on an S3-compatible endpoint."""

    endpoint: str
    """``scheme://host[:port]``."""
    bucket: str
    prefix: str = ""

    def display(self) -> str:
        """``s3:endpoint/bucket[/prefix]``."""
        tail = f"/{self.prefix}" if self.prefix else ""
        return f"s3:{self.endpoint}/{self.bucket}{tail}"


@dataclass(frozen=True)
class RestLocation:
    """A repository behind restic's REST protocol."""

    url: str
    """Base URL without credentials, always ending with ``/``."""
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def display(self) -> str:
        """The URL with the user name but never the password."""
        if self.username is None:
            return f"rest:{self.url}"
        parts = urllib.parse.urlsplit(self.url)
        user = urllib.parse.quote(self.username, safe="")
        netloc = f"{user}:***@{parts.netloc}" if self.password else f"{user}@{parts.netloc}"
        return "rest:" + urllib.parse.urlunsplit(parts._replace(netloc=netloc))


Location = LocalLocation | SftpLocation | S3Location | RestLocation


def _bad(text: str, what: str) -> UsageError:
    return UsageError(f"repository location {redact(text)!r}: {what}")


def parse_location(text: str) -> Location:
    """The location named by ``text``; ``UsageError`` (one line) when it cannot be used."""
    if not text:
        raise UsageError("empty repository location: give a path or sftp:, s3:, rest: location")
    m = _SCHEME.match(text)
    # A single letter before the colon would be a Windows drive (C:\...), never a scheme of ours.
    if m is None or (len(m.group(1)) == 1 and text[2:3] in ("\\", "/")):
        return LocalLocation(text)
    scheme, rest = m.group(1).lower(), text[m.end() :]
    if scheme == "local":
        if not rest:
            raise _bad(text, "no path after local:")
        return LocalLocation(rest)
    if scheme == "sftp":
        return _parse_sftp(text, rest)
    if scheme == "s3":
        return _parse_s3(text, rest)
    if scheme == "rest":
        return _parse_rest(text, rest)
    raise UsageError(
        f"unsupported repository scheme {scheme + ':'!r} in {redact(text)!r}: use a local path, "
        f"sftp:, s3: or rest: (for a local folder whose name has a colon write ./{redact(text)})"
    )


def _parse_sftp(text: str, rest: str) -> SftpLocation:
    if rest.startswith("//"):
        parts = urllib.parse.urlsplit("sftp:" + rest)
        host = parts.hostname
        if not host:
            raise _bad(text, "no host: write sftp://user@host:port//absolute/path")
        try:
            port = parts.port
        except ValueError:
            raise _bad(text, "the port is not a number between 1 and 65535") from None
        # restic: sftp://host//abs is /abs, sftp://host/rel is rel (relative to the home directory).
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        if not path:
            raise _bad(text, "no path: write sftp://user@host:port//absolute/path")
        user = urllib.parse.unquote(parts.username) if parts.username else None
        return SftpLocation(host=host, path=path, user=user, port=port)
    head, sep, path = rest.partition(":")
    if not sep or not head or not path:
        raise _bad(text, "write sftp:[user@]host:/path")
    user, at, host = head.rpartition("@")
    if not host or (at and not user):
        raise _bad(text, "no host: write sftp:[user@]host:/path")
    return SftpLocation(host=host, path=path, user=user or None)


def _parse_s3(text: str, rest: str) -> S3Location:
    if "://" in rest:
        parts = urllib.parse.urlsplit(rest)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise _bad(text, "write s3:https://host[:port]/bucket[/prefix]")
        endpoint, path = f"{parts.scheme}://{parts.netloc}", parts.path
    else:
        host, _, path = rest.partition("/")
        if not host:
            raise _bad(text, "write s3:host/bucket[/prefix] or s3:https://host/bucket")
        endpoint, path = f"https://{host}", "/" + path
    bucket, _, prefix = path.strip("/").partition("/")
    if not bucket:
        raise _bad(text, "no bucket: write s3:https://host[:port]/bucket[/prefix]")
    return S3Location(endpoint=endpoint, bucket=bucket, prefix=prefix.strip("/"))


def _parse_rest(text: str, rest: str) -> RestLocation:
    parts = urllib.parse.urlsplit(rest)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _bad(text, "write rest:http[s]://[user:pass@]host:port/[path]")
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        raise _bad(text, "the port is not a number between 1 and 65535") from None
    netloc = parts.netloc.rpartition("@")[2]
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    url = urllib.parse.urlunsplit((parts.scheme, netloc, path, "", ""))
    user = urllib.parse.unquote(parts.username) if parts.username is not None else None
    password = urllib.parse.unquote(parts.password) if parts.password is not None else None
    return RestLocation(url=url, username=user, password=password)


_URL_PASSWORD = re.compile(r"(://[^/@:]*:)[^/@]*@")


def redact(text: str) -> str:
    """``text`` with any ``user:password@`` password replaced by ``***`` (for messages)."""
    return _URL_PASSWORD.sub(r"\1***@", text)
