"""The curated Python API (``shadowvault.__all__``): a caller backs up and restores through it
alone, and importing the package or the CLI has no side effects (no argv, no threads)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from treeutil import PASSWORD, describe, env, make_full_tree, restic, subtree_at, sv


def test_a_python_caller_backs_up_and_restores_through_the_api_alone(tmp_path: Path) -> None:
    import shadowvault as api

    src, repo_dir, target = tmp_path / "src", tmp_path / "repo", tmp_path / "restored"
    make_full_tree(src, devices=False)
    repo = api.init_repository(str(repo_dir), PASSWORD)
    try:
        first = api.backup(repo, [str(src)])
        second = api.backup(repo, api.BackupOptions(sources=[str(src)], tags=["again"]))
        assert (first.exit_code, second.exit_code) == (0, 0)
        assert first.snapshot_id and second.snapshot_id
        snaps = api.list_snapshots(repo)
        assert [sid for sid, _ in snaps] == [first.snapshot_id, second.snapshot_id]
        # Nothing changed below src: the same tree for it. Not the root's: the root also records
        # the directories above src (/tmp …), which other processes change between two backups.
        assert subtree_at(repo, snaps[0][1].tree, src) == subtree_at(repo, snaps[1][1].tree, src)
        tagged = api.list_snapshots(repo, api.SnapshotFilter(tags=(("again",),)))
        assert [sid for sid, _ in tagged] == [second.snapshot_id]
        done = api.restore(repo, "latest", api.RestoreOptions(target=str(target)))
    finally:
        repo.close()
    assert done.snapshot_id == second.snapshot_id and done.result.exit_code == 0
    assert describe(target / src.relative_to("/")) == describe(src)
    # restic reads what the API wrote.
    listed = restic("ls", "--json", first.snapshot_id[:8], repo=repo_dir).stdout
    assert str(src / "hardlinks") in listed or str(src) in listed


def test_importing_the_package_and_the_cli_reads_no_argv_and_starts_no_thread(tmp_path: Path) -> None:
    sv("init", repo=tmp_path / "r")
    # With a repository and password in the environment and a repository command in argv, the old
    # import-time prefetch would have started scrypt threads here.
    code = (
        "import shadowvault, shadowvault.cli, threading\n"
        "assert threading.active_count() == 1, threading.enumerate()\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", code, "snapshots"], capture_output=True, text=True, env=env(tmp_path / "r")
    )
    assert p.returncode == 0, p.stderr
    light = "import shadowvault, sys; assert 'shadowvault.engine' not in sys.modules, sorted(sys.modules)"
    p = subprocess.run([sys.executable, "-c", light], capture_output=True, text=True, env=env())
    assert p.returncode == 0, p.stderr


def test_the_program_still_derives_the_key_before_loading_the_cli(tmp_path: Path) -> None:
    sv("init", repo=tmp_path / "r")
    code = (
        "import sys\n"
        "sys.argv = ['shadowvault', 'snapshots', '--json']\n"
        "from shadowvault import kdfcache\n"
        "seen = []\n"
        "real = kdfcache.prefetch\n"
        "def spy(*a):\n"
        "    seen.append(('shadowvault.cli' in sys.modules, real(*a)))\n"
        "    return seen[-1][1]\n"
        "kdfcache.prefetch = spy\n"
        "from shadowvault.launcher import main\n"
        "code = main()\n"
        "print(code, seen[0])\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env(tmp_path / "r"))
    assert p.returncode == 0, p.stderr
    # First call: before the CLI was imported, and it started one derivation (one key file).
    assert p.stdout.splitlines()[-1] == "0 (False, 1)", p.stdout + p.stderr
