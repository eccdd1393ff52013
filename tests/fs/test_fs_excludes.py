"""Exclude-pattern semantics (restic-style globs with ``**``)."""

from __future__ import annotations

import pytest

from shadowvault.fs.excludes import ExcludeMatcher


def m(*patterns: str) -> ExcludeMatcher:
    return ExcludeMatcher(list(patterns))


@pytest.mark.parametrize(
    ("pattern", "path", "is_dir", "expected"),
    [
        # unanchored name globs match anywhere
        ("*.log", b"/var/log/syslog.log", False, True),
        ("*.log", b"/a.log", False, True),
        ("*.log", b"/x/a.log.gz", False, False),
        ("*.log", b"/x/alog", False, False),
        ("*.log", b"/logs/a.log/inner", False, True),  # a matching dir covers its contents
        ("foo", b"/1/2/foo", False, True),
        ("foo", b"/foo/1/2", False, True),
        ("foo", b"/1/foo/2", False, True),
        ("foo", b"/1/xfoo", False, False),
        ("foo", b"/1/foox", False, False),
        ("foo/bar", b"/x/foo/bar", False, True),
        ("foo/bar", b"/x/foo/baz/bar", False, False),
        # anchored
        ("/var/cache", b"/var/cache", True, True),
        ("/var/cache", b"/var/cache/apt/pkgcache.bin", False, True),
        ("/var/cache", b"/srv/var/cache", True, False),
        ("/var/cache", b"/var/cachex", True, False),
        ("/var/*/x", b"/var/lib/x", False, True),
        ("/var/*/x", b"/var/lib/y/x", False, False),
        # double star
        ("a/**/b", b"/a/b", False, True),
        ("a/**/b", b"/a/x/b", False, True),
        ("a/**/b", b"/a/x/y/b", False, True),
        ("a/**/b", b"/a/x/y/c", False, False),
        ("/home/**/*.iso", b"/home/u/dl/x.iso", False, True),
        ("/home/**/*.iso", b"/home/x.iso", False, True),
        ("/home/**/*.iso", b"/srv/home/x.iso", False, False),
        ("**/node_modules", b"/p/q/node_modules", True, True),
        ("/data/**", b"/data/anything/at/all", False, True),
        ("/data/**", b"/database", False, False),
        ("**", b"/whatever", False, True),
        # ? and classes
        ("file?.txt", b"/d/file1.txt", False, True),
        ("file?.txt", b"/d/file12.txt", False, False),
        ("file?.txt", b"/d/file/.txt", False, False),
        ("caf?", "/d/café".encode(), False, True),  # ? is one character, not one byte
        ("[abc]x", b"/bx", False, True),
        ("[abc]x", b"/dx", False, False),
        ("[a-c]x", b"/bx", False, True),
        ("[!a-c]x", b"/dx", False, True),
        ("[!a-c]x", b"/bx", False, False),
        ("[^a]x", b"/bx", False, True),
        ("[]]x", b"/]x", False, True),
        ("a[-]b", b"/a-b", False, True),
        (r"a\*b", b"/a*b", False, True),
        (r"a\*b", b"/axb", False, False),
        ("a.b", b"/axb", False, False),  # regex metacharacters are literal
        ("a+(b)", b"/a+(b)", False, True),
        # trailing slash: directories only
        ("build/", b"/p/build", True, True),
        ("build/", b"/p/build", False, False),
        ("build/", b"/p/build/out.o", False, True),
        # relative paths match as if rooted
        ("/etc", b"etc/passwd", False, True),
        ("*.log", b"x/y.log", False, True),
        # path normalisation
        ("/var/cache", b"/var//cache/", True, True),
    ],
)
def test_pattern_semantics(pattern: str, path: bytes, is_dir: bool, expected: bool) -> None:
    assert m(pattern).matches(path, is_dir) is expected


def test_several_patterns_and_first_match() -> None:
    matcher = m("*.tmp", "/srv/cache", "**/.git/")
    assert matcher.matches(b"/srv/cache/x", False)
    assert matcher.first_match(b"/srv/cache/x", False) == "/srv/cache"
    assert matcher.first_match(b"/home/u/p/.git", True) == "**/.git/"
    assert matcher.first_match(b"/home/u/p/.gitignore", False) is None
    assert not matcher.matches(b"/home/u/report.txt", False)
    assert matcher.patterns == ["*.tmp", "/srv/cache", "**/.git/"]


def test_empty_matcher_matches_nothing() -> None:
    matcher = ExcludeMatcher(["", ""])
    assert not matcher
    assert not matcher.matches(b"/anything", True)
    assert matcher.first_match(b"/anything", False) is None


def test_non_utf8_names() -> None:
    name = b"/data/caf\xe9.log"  # latin-1 byte, invalid UTF-8
    assert m("*.log").matches(name, False)
    assert m("/data/caf\udce9.log").matches(name, False)  # surrogate-escaped pattern
    assert not m("/data/cafe.log").matches(name, False)


def test_case_insensitive_option() -> None:
    assert not ExcludeMatcher(["pagefile.sys"]).matches(b"/c/PAGEFILE.SYS", False)
    assert ExcludeMatcher(["pagefile.sys"], case_insensitive=True).matches(b"/c/PAGEFILE.SYS", False)


@pytest.mark.parametrize("bad", ["[abc", "x/[!", "a[]", "trailing\\", "/", "//"])
def test_malformed_patterns_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="exclude pattern"):
        ExcludeMatcher([bad])


def test_many_double_stars_do_not_backtrack_forever() -> None:
    matcher = m("/**/**/**/**/**/**/x/**/y")
    deep = b"/" + b"/".join([b"d"] * 200) + b"/z"
    assert not matcher.matches(deep, False)
    assert matcher.matches(b"/a/x/b/c/y", False)
