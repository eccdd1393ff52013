"""Issue 16: the manual page (`shadowvault help --man`), generated from the parser, renders without
a warning and names every command, the environment variables and the exit codes; `help COMMAND`
shows that command's help."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from conftest import require_binary
from shadowvault.cli.commands import COMMANDS
from shadowvault.cli.manpage import INTERRUPT_CODES
from shadowvault.cli.parser import EXIT_CODES, environment
from shadowvault.repo.backends.options import ENVIRONMENT
from treeutil import sv

UTF8 = {**os.environ, "LC_ALL": "C.UTF-8", "MANWIDTH": "100"}


def _page(tmp_path: Path) -> Path:
    p = sv("help", "--man")
    assert p.stderr == ""
    assert p.stdout.startswith(".TH SHADOWVAULT 1 ")
    assert p.stdout.isascii()  # anything else is escaped as \[uXXXX]: groff needs no preconv
    page = tmp_path / "shadowvault.1"
    page.write_text(p.stdout)
    return page


def test_groff_renders_the_page_without_warnings_and_it_names_everything(tmp_path: Path) -> None:
    require_binary("groff")
    page = _page(tmp_path)
    out = subprocess.run(
        ["groff", "-man", "-Tutf8", "-ww", str(page)], capture_output=True, text=True, env=UTF8, check=True
    )
    assert out.stderr == "", out.stderr
    text = re.sub(r".\x08", "", out.stdout)  # overstriking (bold, underline) off
    sections = {line.strip() for line in text.splitlines() if line and not line.startswith(" ")}
    for heading in ("NAME", "SYNOPSIS", "GLOBAL OPTIONS", "COMMANDS", "ENVIRONMENT", "EXIT STATUS"):
        assert heading in sections, heading
    # Every command is a subsection of COMMANDS ("   backup" indented by three spaces).
    subsections = {line.strip() for line in text.splitlines() if re.match(r"^ {3}\S", line)}
    assert set(COMMANDS) <= subsections, set(COMMANDS) - subsections
    env_part = text[text.index("\nENVIRONMENT") : text.index("\nEXIT STATUS")]
    for var, _ in (*environment(repository=True), *ENVIRONMENT):
        assert var in env_part, var
    exit_part = text[text.index("\nEXIT STATUS") :]
    codes = {int(m) for m in re.findall(r"^ {7}(\d+) ", exit_part, flags=re.M)}
    expected = set(EXIT_CODES) | set(INTERRUPT_CODES)
    for module in COMMANDS.values():
        expected |= set(getattr(module, "EXIT_CODES", {}))
    assert codes == expected
    assert "--limit-upload KiB/s" in text and "--retry-times N" in text


def test_man_shows_the_page_without_warnings(tmp_path: Path) -> None:
    require_binary("man")
    page = _page(tmp_path)
    out = subprocess.run(["man", "-l", "-Tutf8", str(page)], capture_output=True, text=True, env=UTF8)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    out = subprocess.run(
        ["man", "--warnings", "-l", str(page)], capture_output=True, text=True, env={**UTF8, "PAGER": "cat"}
    )
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert "shadowvault [GLOBAL OPTIONS] COMMAND" in out.stdout


def test_help_shows_a_commands_help_and_suggests_on_a_typo() -> None:
    p = sv("help", "restore")
    assert "usage: shadowvault restore" in p.stdout.lower() and "--overwrite" in p.stdout
    p = sv("help", "restor", check=False)
    assert p.returncode == 2 and "did you mean 'restore'?" in p.stderr and "Traceback" not in p.stderr
    p = sv("help", "backup", "--man", check=False)
    assert p.returncode == 2
