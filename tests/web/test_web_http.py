"""Issue 17: the web page over HTTP from a real `shadowvault web` process (see statusfixtures).

Escaping, downloads, the token and host checks; the browser tests are in test_web_browser.py.
"""

from __future__ import annotations

import html
import io
import json
import os
import tarfile
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import pytest
from webserver import WebServer, get, own_address, start_web

from shadowvault.engine.browse import SnapshotReader
from shadowvault.engine.status import repository_status
from shadowvault.repo import FileType, LocalBackend, Repository, forget, prune
from statusfixtures import WEIRD_NAMES, Scenario, make_scenario
from treeutil import PASSWORD, sv


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    yield make_scenario(tmp_path_factory.mktemp("web"))


@pytest.fixture(scope="module")
def server(scenario: Scenario) -> Iterator[WebServer]:
    web = start_web(scenario)
    yield web
    web.stop()


def latest_of(s: Scenario, set_name: str) -> str:
    snaps = json.loads(s.sv("snapshots", "--json").stdout)
    return str([x for x in snaps if set_name in x["tags"]][-1]["id"])


def q(path: Path | bytes) -> str:
    return quote(os.fsencode(path), safe="/")


class Tags(HTMLParser):
    """Every start tag of a page, with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags_of(html: str) -> list[tuple[str, dict[str, str | None]]]:
    p = Tags()
    p.feed(html)
    return p.tags


def test_overview_and_status_json_show_the_sets(server: WebServer, scenario: Scenario) -> None:
    page = get(server.url + "/")
    assert page.status == 200
    for name in ("docs", "db", "broken", "nightly"):
        assert f'data-set="{name}"' in page.text
    assert 'data-set="broken" data-flagged="yes"' in page.text
    assert 'data-set="docs" data-flagged="no"' in page.text
    assert html.escape(str(scenario.held)) in page.text and "sleep (pid" in page.text
    assert "<b>" not in page.text
    doc = json.loads(get(server.url + "/status.json").body)
    cli = json.loads(scenario.sv("status", "--json").stdout.strip().splitlines()[-1])
    # The page reads what the CLI reads: same sets, same runs, same problem files.
    assert [s["name"] for s in doc["sets"]] == [s["name"] for s in cli["sets"]]
    assert [s["last_run"] for s in doc["sets"]] == [s["last_run"] for s in cli["sets"]]
    assert [s["problems"] for s in doc["sets"]] == [s["problems"] for s in cli["sets"]]
    assert doc["repositories"][0]["snapshots"] == cli["repositories"][0]["snapshots"] == 3


def test_session_page_lists_every_problem_file_with_reason_attempts_and_writer(
    server: WebServer, scenario: Scenario
) -> None:
    doc = json.loads(get(server.url + "/status.json").body)
    sets = {s["name"]: s for s in doc["sets"]}
    for name, path, cls in (("docs", scenario.held, "suspect"), ("db", scenario.failed, "failed")):
        page = get(f"{server.url}/sessions/{sets[name]['last_run']['session_id']}")
        assert page.status == 200
        row = page.text[page.text.index(html.escape(str(path))) :].split("</tr>")[0]
        assert "<b>" not in page.text
        assert f'data-class="{cls}"' in page.text
        assert f"sleep (pid {scenario.writer_pid})" in row
        assert "open-for-writing" in row and '<td class="num">1</td>' in row
    assert get(server.url + "/sessions/999").status == 404


def test_names_with_odd_bytes_quotes_and_markup_are_escaped(server: WebServer, scenario: Scenario) -> None:
    snap = latest_of(scenario, "docs")
    page = get(f"{server.url}/snapshots/{snap}/browse?path={q(scenario.docs)}")
    assert page.status == 200
    assert "bad\\xffname.txt" in page.text
    assert "&lt;script&gt;alert(1)&lt;.txt" in page.text
    assert "&lt;img src=x onerror=alert(2)&gt;" in page.text
    assert "quote&#34;s&#39;.txt" in page.text
    tags = tags_of(page.text)
    assert {t for t, _ in tags} <= {
        "html",
        "head",
        "meta",
        "title",
        "style",
        "body",
        "header",
        "strong",
        "a",
        "main",
        "h1",
        "p",
        "section",
        "table",
        "tr",
        "th",
        "td",
        "code",
        "span",
    }
    assert not any(k.startswith("on") for _, attrs in tags for k in attrs)
    # The links carry the exact bytes: each one downloads its own file.
    for name in WEIRD_NAMES:
        link = f"/snapshots/{snap}/file?path={q(os.fsencode(scenario.docs) + b'/' + name)}"
        assert link.replace("&", "&amp;") in page.text or link in page.text
        got = get(server.url + link)
        assert got.status == 200 and got.body == b"unusual name " + name
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'none' forbids scripts
    assert "default-src 'none'" in page.headers["content-security-policy"]


def test_file_and_directory_downloads_equal_the_originals(server: WebServer, scenario: Scenario) -> None:
    snap = latest_of(scenario, "docs")
    deep = scenario.docs / "sub" / "deep.bin"
    got = get(f"{server.url}/snapshots/{snap}/file?path={q(deep)}")
    assert got.status == 200 and got.body == deep.read_bytes()
    assert got.headers["content-disposition"].endswith("filename*=UTF-8''deep.bin")
    tar = get(f"{server.url}/snapshots/{snap}/tar?path={q(scenario.docs)}")
    assert tar.status == 200 and tar.headers["content-type"] == "application/x-tar"
    with tarfile.open(fileobj=io.BytesIO(tar.body), encoding="utf-8", errors="surrogateescape") as t:
        members = {os.fsencode(m.name): m for m in t.getmembers()}
        for original in scenario.docs.rglob("*"):
            rel = b"docs/" + os.fsencode(original.relative_to(scenario.docs))
            assert rel in members, rel
            if original.is_file():
                data = t.extractfile(members[rel])
                assert data is not None
                stored = data.read()
                if original != scenario.held:  # the writer may have appended; it was suspect
                    assert stored == original.read_bytes(), rel
        assert members[b"docs/sub"].isdir()
    assert get(f"{server.url}/snapshots/{snap}/tar?path={q(deep)}").status == 404
    assert get(f"{server.url}/snapshots/{snap}/file?path={q(scenario.docs / 'nope')}").status == 404


def test_failed_files_are_marked_in_the_browser(server: WebServer, scenario: Scenario) -> None:
    snap = latest_of(scenario, "db")
    page = get(f"{server.url}/snapshots/{snap}/browse?path={q(scenario.failed.parent)}")
    row = page.text[page.text.index('data-type="missing"') :].split("</tr>")[0]
    assert "data.db" in row and "failed" in row and f"sleep (pid {scenario.writer_pid})" in row


def test_the_page_is_read_only_and_never_carries_the_password(server: WebServer, scenario: Scenario) -> None:
    assert get(server.url + "/", method="POST").status == 405
    assert get(server.url + "/", method="DELETE").status == 405
    snap = latest_of(scenario, "docs")
    for path in ("/", "/status.json", "/snapshots", f"/snapshots/{snap}/browse?path=/"):
        assert PASSWORD not in get(server.url + path).text


def test_loopback_listener_refuses_other_host_names(server: WebServer) -> None:
    """DNS rebinding: a page of evil.example resolving to 127.0.0.1 gets nothing."""
    assert get(server.url + "/", headers={"Host": "evil.example"}).status == 403
    assert get(server.url + "/", headers={"Host": f"localhost:{server.port}"}).status == 200


def test_non_loopback_listen_needs_a_token(scenario: Scenario, tmp_path: Path) -> None:
    host = own_address()
    p = scenario.sv("web", "--listen", f"{host}:1", check=False)
    assert p.returncode == 2 and "--token-file" in p.stderr and p.stderr.count("\n") == 1
    weak = tmp_path / "weak"
    weak.write_text("short\n")
    p = scenario.sv("web", "--listen", f"{host}:1", "--token-file", str(weak), check=False)
    assert p.returncode == 2 and "at least 16" in p.stderr


def test_non_loopback_listener_checks_the_token_on_every_request(scenario: Scenario, tmp_path: Path) -> None:
    token = "k7Qe2-Zp9xWm4Ls8vB1nTr6Y"
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    web = start_web(scenario, own_address(), "--token-file", str(token_file))
    try:
        for path in ("/", "/status.json", "/snapshots", "/sessions/1"):
            refused = get(web.url + path)
            assert refused.status == 401 and b"docs" not in refused.body
        assert get(web.url + "/", headers={"Authorization": "Bearer wrong-token-0123456789"}).status == 401
        assert get(web.url + "/", headers={"Authorization": f"Bearer {token}"}).status == 200
        signin = get(web.url + f"/snapshots?token={token}")
        assert signin.status == 303 and signin.headers["location"] == "/snapshots"
        cookie = signin.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert get(web.url + "/snapshots", headers={"Cookie": cookie.split(";")[0]}).status == 200
        assert get(web.url + "/snapshots", headers={"Cookie": "sv_token=nope"}).status == 401
    finally:
        web.stop()


def test_the_snapshot_reader_follows_a_prune(tmp_path: Path) -> None:
    """A long-running reader (the web server's) must not keep an index a prune replaced: the file
    that prune moved into a new pack is still read, and the deleted pack no longer counts as
    unreferenced data on the overview."""
    src = tmp_path / "src"
    src.mkdir()
    keep, drop = os.urandom(100_000), os.urandom(100_000)
    (src / "keep.bin").write_bytes(keep)
    (src / "drop.bin").write_bytes(drop)
    repo_path = tmp_path / "repo"
    x = {"XDG_STATE_HOME": str(tmp_path / "state"), "XDG_DATA_HOME": str(tmp_path / "data")}
    sv("init", repo=repo_path, env_extra=x)
    sv("backup", str(src), repo=repo_path, env_extra=x)  # one pack holds both files
    (src / "drop.bin").unlink()
    sv("backup", str(src), repo=repo_path, env_extra=x)
    first, second = (
        s["id"] for s in json.loads(sv("snapshots", "--json", repo=repo_path, env_extra=x).stdout)
    )

    reader = SnapshotReader(Repository.open(LocalBackend(repo_path), PASSWORD))
    _, snap = reader.snapshot(second)
    _, chunks = reader.read_file(snap, str(src / "keep.bin"))
    assert b"".join(chunks) == keep

    other = Repository.open(LocalBackend(repo_path), PASSWORD)
    with other.lock(exclusive=True):
        forget(other, [first])
        stats = prune(other)
    other.close()
    assert stats.repacked_packs and stats.removed_index_files  # keep.bin's pack was rewritten

    _, snap = reader.snapshot(second)
    _, chunks = reader.read_file(snap, str(src / "keep.bin"))
    assert b"".join(chunks) == keep
    assert [s.id for s in reader.snapshots()] == [second]
    assert repository_status(reader.repo, None).unreferenced_bytes == 0
    on_disk = {name for name, _ in reader.repo.list_files(FileType.PACK)}
    assert {p.hex() for p in reader.repo.index.pack_ids()} == on_disk
    reader.repo.close()
