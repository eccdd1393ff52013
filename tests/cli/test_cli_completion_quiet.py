"""Issue 16: shell completion from the parser, -q silence, --files-from and --exclude-file."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from shadowvault.cli.commands import COMMANDS
from treeutil import sv


def _bash_complete(script: Path, *words: str) -> list[str]:
    line = " ".join(words)
    p = subprocess.run(
        [
            "bash",
            "-c",
            f"source {script}; COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; "
            'COMP_LINE="'
            + line
            + '"; COMP_POINT=${#COMP_LINE}; _shtab_shadowvault; printf "%s\\n" "${COMPREPLY[@]}"',
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return p.stdout.split()


def test_bash_completion_knows_commands_and_options(tmp_path: Path) -> None:
    script = tmp_path / "sv.bash"
    script.write_text(sv("completion", "bash").stdout)
    assert _bash_complete(script, "shadowvault", "rest") == ["restore"]
    assert set(_bash_complete(script, "shadowvault", "backup", "--exclude")) >= {
        "--exclude",
        "--exclude-file",
        "--exclude-if-present",
    }


def test_zsh_and_fish_scripts_cover_every_command() -> None:
    zsh = sv("completion", "zsh").stdout
    fish = sv("completion", "fish").stdout
    assert zsh.startswith("#compdef shadowvault")
    for name in COMMANDS:
        assert f"-a {name} " in fish and f"__fish_seen_subcommand_from {name}'" in fish
        assert name in zsh
    assert "-l retry-times -r" in fish and "-l open-files -x -a 'try-deny-write" in fish


def test_quiet_backup_prints_nothing_and_list_files(tmp_path: Path) -> None:
    repo, src = tmp_path / "repo", tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "b").mkdir()
    (src / "a" / "keep.txt").write_text("k")
    (src / "a" / "skip.log").write_text("s")
    (src / "b" / "not-listed.txt").write_text("n")
    sv("init", repo=repo)
    files = tmp_path / "files.txt"
    files.write_text(f"# sources\n{src / 'a'}\n\n")
    excludes = tmp_path / "excludes.txt"
    excludes.write_text("# logs\n*.log\n")
    p = sv("backup", "-q", "--files-from", str(files), "--exclude-file", str(excludes), repo=repo)
    assert p.stdout == "" and p.stderr == ""
    listed = sv("ls", "latest", repo=repo).stdout.split()
    assert f"{src}/a/keep.txt" in listed
    assert f"{src}/a/skip.log" not in listed and f"{src}/b/not-listed.txt" not in listed
    missing = sv("backup", "--files-from", str(tmp_path / "nope"), repo=repo, check=False)
    assert missing.returncode == 2 and "cannot read --files-from file" in missing.stderr


def test_verbose_lists_new_modified_and_with_vv_unchanged(tmp_path: Path) -> None:
    repo, src = tmp_path / "repo", tmp_path / "src"
    src.mkdir()
    (src / "same.txt").write_text("same")
    (src / "edit.txt").write_text("before")
    sv("init", repo=repo)
    first = sv("backup", "-v", str(src), repo=repo).stderr
    assert f"new       {src}/same.txt" in first and f"new       {src}/edit.txt" in first
    (src / "edit.txt").write_text("after, longer")
    (src / "added.txt").write_text("added")
    second = sv("backup", str(src), "-v", repo=repo).stderr
    assert f"modified  {src}/edit.txt" in second and f"new       {src}/added.txt" in second
    assert "same.txt" not in second
    third = sv("backup", str(src), "-vv", repo=repo).stderr
    assert f"unchanged {src}/same.txt" in third


def test_backup_dry_run_names_what_it_would_read_and_exclude(tmp_path: Path) -> None:
    repo, src = tmp_path / "repo", tmp_path / "src"
    (src / "cache").mkdir(parents=True)
    (src / "cache" / "CACHEDIR.TAG").write_text("Signature: 8a477f597d28d172789f06886806bc55\n")
    (src / "a.txt").write_text("12345")
    (src / "b.tmp").write_text("xx")
    sv("init", repo=repo)
    p = sv("backup", "--dry-run", "-v", "--exclude", "*.tmp", str(src), repo=repo)
    assert f"would save  {src}/a.txt" in p.stdout
    assert f"excluded    {src}/b.tmp (exclude pattern '*.tmp')" in p.stdout
    assert f"excluded    {src}/cache (contains CACHEDIR.TAG)" in p.stdout
    assert "would back up 1 files, 1 directories, 0 other entries, 5 B; 2 excluded" in p.stdout
    doc = json.loads(sv("backup", "--dry-run", "--json", "--exclude", "*.tmp", str(src), repo=repo).stdout)
    assert doc["files"] == 1 and doc["bytes"] == 5 and len(doc["excluded"]) == 2
    assert json.loads(sv("snapshots", "--json", repo=repo).stdout) == []  # nothing was written


def test_iexclude_ignores_case(tmp_path: Path) -> None:
    from shadowvault.cli.backup_inputs import case_insensitive_glob

    assert case_insensitive_glob("/Data/[ab]x/*.JPG") == "/[dD][aA][tT][aA]/[ab][xX]/*.[jJ][pP][gG]"
    src = tmp_path / "src"
    src.mkdir()
    for name in ("photo.JPG", "other.jpg", "Other.Jpg", "keep.png"):
        (src / name).write_text(name)
    doc = json.loads(
        sv("backup", "--dry-run", "--json", "--iexclude", "*.jpg", str(src), repo=tmp_path / "r").stdout
    )
    assert sorted(os.path.basename(e["path"]) for e in doc["excluded"]) == [
        "Other.Jpg",
        "other.jpg",
        "photo.JPG",
    ]
    assert doc["files"] == 1
