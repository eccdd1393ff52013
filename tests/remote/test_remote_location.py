"""Repository locations as restic spells them, and the CLI refusing what it cannot use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from shadowvault.errors import UsageError
from shadowvault.repo.location import (
    LocalLocation,
    RestLocation,
    S3Location,
    SftpLocation,
    parse_location,
    redact,
)
from treeutil import env, sv


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/srv/repo", LocalLocation("/srv/repo")),
        ("relative/repo", LocalLocation("relative/repo")),
        ("./odd:name", LocalLocation("./odd:name")),
        ("local:/srv/repo", LocalLocation("/srv/repo")),
        ("sftp:user@host:/srv/repo", SftpLocation(host="host", path="/srv/repo", user="user")),
        ("sftp:host:repo", SftpLocation(host="host", path="repo")),
        (
            "sftp://user@host:2222//srv/repo",
            SftpLocation(host="host", path="/srv/repo", user="user", port=2222),
        ),
        ("sftp://host/repo", SftpLocation(host="host", path="repo")),
        ("s3:https://minio.lan:9000/bucket", S3Location("https://minio.lan:9000", "bucket")),
        ("s3:http://127.0.0.1:9000/bucket/a/b/", S3Location("http://127.0.0.1:9000", "bucket", "a/b")),
        ("s3:s3.amazonaws.com/bucket/pfx", S3Location("https://s3.amazonaws.com", "bucket", "pfx")),
        ("rest:http://host:8000/", RestLocation("http://host:8000/")),
        ("rest:https://host:8000/user/repo", RestLocation("https://host:8000/user/repo/")),
        ("rest:http://me:s%40cret@host:8000/r/", RestLocation("http://host:8000/r/", "me", "s@cret")),
    ],
)
def test_parse(text: str, expected: object) -> None:
    assert parse_location(text) == expected


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("b2:bucket/path", ["'b2:'", "sftp:", "s3:", "rest:"]),
        ("sfpt:host:/x", ["'sfpt:'", "sftp:"]),
        ("sftp:host", ["sftp:[user@]host:/path"]),
        ("sftp://host:99999//x", ["port"]),
        ("s3:https://host:9000/", ["bucket"]),
        ("s3:ftp://host/bucket", ["s3:https://"]),
        ("rest:ftp://host/", ["rest:http"]),
        ("local:", ["local:"]),
    ],
)
def test_refused_with_one_line(text: str, words: list[str]) -> None:
    with pytest.raises(UsageError) as e:
        parse_location(text)
    msg = str(e.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg


def test_password_never_displayed() -> None:
    loc = parse_location("rest:https://me:hunter2@host:8000/r/")
    assert "hunter2" not in loc.display() and "hunter2" not in repr(loc)
    assert loc.display() == "rest:https://me:***@host:8000/r/"
    assert redact("rest:http://me:hunter2@h/") == "rest:http://me:***@h/"
    with pytest.raises(UsageError) as e:
        parse_location("xyz:http://me:hunter2@h/")
    assert "hunter2" not in str(e.value)


def test_display_round_trips() -> None:
    for text in ("sftp:u@h:/srv/r", "sftp://u@h:2222//srv/r", "s3:https://h:9/b/p", "rest:http://h:1/r/"):
        loc = parse_location(text)
        assert parse_location(loc.display()) == loc


def test_cli_refuses_unknown_scheme_and_creates_nothing(tmp_path: Path) -> None:
    # Before this, `init --repo sftp:...` made a local folder named "sftp:user@host:".
    p = sv("init", "--repo", "b2:bucket/x", check=False, env_extra={"HOME": str(tmp_path)})
    assert p.returncode == 2
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "'b2:'" in lines[0] and "Traceback" not in p.stderr


def test_cli_sftp_location_is_not_a_local_folder(tmp_path: Path) -> None:
    # An unreachable SSH host: the command fails with one line and no folder appears in the cwd.
    p = subprocess_in(tmp_path, "init", "--repo", "sftp:nobody@127.0.0.1:/srv/repo")
    assert p.returncode != 0
    assert list(tmp_path.iterdir()) == []
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr


def subprocess_in(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # Port 1 on loopback refuses at once; BatchMode keeps ssh from asking anything.
    e = env(
        None,
        SHADOWVAULT_SFTP_COMMAND="ssh -o BatchMode=yes -o ConnectTimeout=5 -p 1 nobody@127.0.0.1 -s sftp",
    )
    return subprocess.run(
        [sys.executable, "-m", "shadowvault", *args],
        capture_output=True,
        text=True,
        env=e,
        cwd=cwd,
        timeout=120,
    )
