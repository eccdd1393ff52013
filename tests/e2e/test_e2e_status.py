"""Issue 17: `status [--json]` and `status --prometheus FILE` after real runs (see statusfixtures)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from shadowvault.config import parse_config
from shadowvault.engine.activity import ActivityLog
from shadowvault.engine.status import ClassCounts, RunInfo, flags_for, read_status
from statusfixtures import Scenario, hold_open, make_scenario
from treeutil import repo_activity_db, sv


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    yield make_scenario(tmp_path_factory.mktemp("status"))


def status_doc(s: Scenario, *args: str) -> dict[str, Any]:
    p = s.sv("status", "--json", *args)
    doc: dict[str, Any] = json.loads(p.stdout.strip().splitlines()[-1])
    return doc


def test_status_json_lists_suspect_and_failed_files_with_their_writer(scenario: Scenario) -> None:
    doc = status_doc(scenario)
    sets = {s["name"]: s for s in doc["sets"]}
    assert list(sets) == ["docs", "db", "broken", "nightly"]
    writer = [{"pid": scenario.writer_pid, "command": scenario.writer_command}]

    docs = sets["docs"]
    assert docs["last_run"]["status"] == "completed" and docs["last_run"]["exit_code"] == 4
    assert docs["last_run"]["counts"]["suspect"] == 1 and docs["last_run"]["counts"]["failed"] == 0
    assert docs["last_run"]["duration"] > 0 and docs["last_run"]["snapshot_id"]
    suspect = [p for p in docs["problems"] if p["class"] == "suspect"]
    assert [p["path"] for p in suspect] == [str(scenario.held)]
    assert suspect[0]["writers"] == writer and suspect[0]["reason"] == "open-for-writing"
    assert not docs["flagged"]

    db = sets["db"]
    assert db["last_run"]["exit_code"] == 3
    failed = [p for p in db["problems"] if p["class"] == "failed"]
    assert [p["path"] for p in failed] == [str(scenario.failed)]
    assert failed[0]["writers"] == writer and failed[0]["attempts"] == 1
    assert db["flagged"] and [f["kind"] for f in db["flags"]] == ["files-failed"]


def test_status_flags_a_failed_set_and_a_scheduled_set_that_never_ran(scenario: Scenario) -> None:
    sets = {s["name"]: s for s in status_doc(scenario)["sets"]}
    broken = sets["broken"]
    assert broken["last_run"]["status"] == "failed" and broken["last_run"]["exit_code"] == 1
    assert broken["flagged"] and broken["flags"][0]["kind"] == "failed"
    assert broken["next_run"] is None
    nightly = sets["nightly"]
    assert nightly["last_run"] is None and nightly["flagged"]
    assert [f["kind"] for f in nightly["flags"]] == ["never-run"]
    next_at = datetime.fromisoformat(nightly["next_run"]["at"])
    assert timedelta(0) < next_at - datetime.now(UTC) <= timedelta(hours=1)
    assert next_at.astimezone().minute == 0


def test_status_reports_the_repository(scenario: Scenario) -> None:
    (repo,) = status_doc(scenario)["repositories"]
    assert repo["snapshots"] == 3  # docs twice, db once; broken wrote none
    on_disk = sum(f.stat().st_size for f in scenario.repo.rglob("*") if f.is_file())
    assert 0 < repo["size_bytes"] <= on_disk
    assert repo["unreferenced_bytes"] == 0  # nothing was forgotten yet
    assert repo["last_check"]["ok"] is True and repo["last_check"]["read_data"] is False
    text = scenario.sv("status").stdout
    assert "set docs" in text and str(scenario.held) in text and "last check" in text
    assert "! set broken" in text and "never-run" in text


def test_unreferenced_data_appears_after_forget(scenario: Scenario, tmp_path: Path) -> None:
    """Forgetting the db snapshot (in a copy of the repository: the scenario stays as it is)
    leaves its random file's data unreferenced."""
    copy = tmp_path / "repo"
    shutil.copytree(scenario.repo, copy)
    db_snap = json.loads(scenario.sv("snapshots", "--json").stdout)
    ids = [
        s["id"] for s in (db_snap if isinstance(db_snap, list) else [db_snap]) if "db" in s.get("tags", [])
    ]
    assert len(ids) == 1
    os.unlink(copy / "snapshots" / ids[0])
    p = sv("status", "--json", repo=copy, env_extra=scenario.env)
    (repo,) = json.loads(p.stdout.strip().splitlines()[-1])["repositories"]
    assert repo["snapshots"] == 2
    # other.bin's 200,000 random bytes (incompressible) plus the db snapshot's few trees.
    assert 200_000 <= repo["unreferenced_bytes"] < 200_000 + 10_000


def test_prometheus_textfile_parses_and_carries_the_values(scenario: Scenario, tmp_path: Path) -> None:
    target = tmp_path / "shadowvault.prom"
    doc = status_doc(scenario, "--prometheus", str(target))
    assert not list(tmp_path.glob("*.prom.*"))  # the temporary file was renamed into place
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(target.read_text()):
        assert family.type == "gauge"
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value

    def value(name: str, **labels: str) -> float:
        return samples[("shadowvault_" + name, tuple(sorted(labels.items())))]

    sets = {s["name"]: s for s in doc["sets"]}
    docs = sets["docs"]["last_run"]
    assert value("last_run_files", set="docs", **{"class": "suspect"}) == 1
    assert value("last_run_files", set="db", **{"class": "failed"}) == 1
    assert value("last_run_files", set="docs", **{"class": "ok"}) == docs["counts"]["ok"] > 0
    assert value("last_run_duration_seconds", set="docs") == pytest.approx(docs["duration"])
    assert value("last_run_bytes_added", set="docs") == docs["bytes_added"]
    ended = datetime.fromisoformat(sets["docs"]["last_success"]["ended"]).timestamp()
    assert value("last_success_timestamp_seconds", set="docs") == pytest.approx(ended)
    assert ("shadowvault_last_success_timestamp_seconds", (("set", "broken"),)) not in samples
    assert value("last_run_exit_code", set="broken") == 1
    assert value("set_flagged", set="broken") == 1 and value("set_flagged", set="docs") == 0
    (repo,) = doc["repositories"]
    assert value("set_repository_size_bytes", set="docs") == repo["size_bytes"]
    assert value("repository_size_bytes", repository=repo["location"]) == repo["size_bytes"]
    assert value("repository_snapshots", repository=repo["location"]) == 3
    assert value("repository_last_check_problems", repository=repo["location"]) == 0


def test_prometheus_into_a_missing_directory_is_one_line(scenario: Scenario, tmp_path: Path) -> None:
    p = scenario.sv("status", "--prometheus", str(tmp_path / "nope" / "x.prom"), check=False)
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1 and "does not exist" in p.stderr and "Traceback" not in p.stderr


def test_read_status_through_the_api_matches_the_log(scenario: Scenario) -> None:
    """The same engine call the CLI makes, without a repository (sets only)."""
    db = repo_activity_db(Path(scenario.env["XDG_STATE_HOME"]), scenario.repo)
    status = read_status(parse_config(scenario.config.read_text(), scenario.config), db, None, None)
    assert status.repositories == ()
    with ActivityLog(db) as log:
        assert len(log.sessions("docs")) == scenario.runs_of_docs
    docs = next(s for s in status.sets if s.name == "docs")
    assert docs.last_run is not None and docs.last_run.counts.suspect == 1
    assert docs.problems[0].writers[0].pid == scenario.writer_pid


def test_a_scheduled_set_whose_due_run_did_not_come_is_flagged_missed(scenario: Scenario) -> None:
    """The recorded runs of ``docs`` against a configuration that schedules it hourly: right
    after its last run it is fine; three hours later the due runs were missed."""
    db = repo_activity_db(Path(scenario.env["XDG_STATE_HOME"]), scenario.repo)
    text = scenario.config.read_text().replace(
        'open_files = "try-deny-write"', 'open_files = "try-deny-write"\nschedule = "hourly"'
    )
    cfg = parse_config(text, scenario.config)
    with ActivityLog(db) as log:
        last = log.sessions("docs", limit=1)[0].started
    soon = read_status(cfg, db, None, None, now=last + timedelta(minutes=5))
    assert [f.kind for f in next(s for s in soon.sets if s.name == "docs").flags] == []
    later = read_status(cfg, db, None, None, now=last + timedelta(hours=3))
    docs = next(s for s in later.sets if s.name == "docs")
    assert [f.kind for f in docs.flags] == ["missed"] and docs.flagged
    assert docs.next_run is not None and docs.next_run.at > last + timedelta(hours=2)


def _run(started: datetime, *, ok: bool = True) -> RunInfo:
    return RunInfo(
        session_id=1,
        set_name="s",
        started=started,
        ended=started + timedelta(minutes=1),
        status="completed" if ok else "failed",
        exit_code=0 if ok else 1,
        counts=ClassCounts(ok=3),
        bytes_read=1,
        bytes_added=1,
        snapshot_id="ab" * 32 if ok else None,
    )


def test_missed_schedule_is_flagged_only_once_the_due_run_is_late() -> None:
    cfg = parse_config('[sets.s]\nsources = ["/x"]\nschedule = "daily 02:00"\n', Path("/cfg.toml"))
    bset = cfg.effective("s").values
    local = datetime.now().astimezone().tzinfo
    ran = datetime(2026, 3, 10, 2, 0, 5, tzinfo=local)
    runs = [_run(ran)]
    assert flags_for(bset, runs, ran + timedelta(hours=20)) == ()
    assert flags_for(bset, runs, ran + timedelta(hours=24, minutes=30)) == ()  # within the grace
    (late,) = flags_for(bset, runs, ran + timedelta(hours=26))
    assert late.kind == "missed" and "daily 02:00" in late.message
    # A failed run after the missed one does not hide either problem.
    kinds = [
        f.kind
        for f in flags_for(
            bset, [_run(ran + timedelta(hours=25), ok=False), *runs], ran + timedelta(hours=26)
        )
    ]
    assert kinds == ["failed", "missed"]


def test_runs_without_a_set_are_shown_too(tmp_path: Path) -> None:
    """`backup PATHS` (the zero-configuration first run) names no set; status still shows it."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a\n")
    held = src / "busy.log"
    held.write_text("x\n")
    x = {"XDG_STATE_HOME": str(tmp_path / "state"), "XDG_DATA_HOME": str(tmp_path / "data")}
    repo = tmp_path / "repo"
    sv("init", repo=repo, env_extra=x)
    writer = hold_open(held)
    try:
        assert sv("backup", str(src), repo=repo, env_extra=x, check=False).returncode == 4
    finally:
        writer.kill()
        writer.wait()
    doc = json.loads(sv("status", "--json", repo=repo, env_extra=x).stdout.strip().splitlines()[-1])
    (only,) = doc["sets"]
    assert only["name"] == "" and only["last_run"]["exit_code"] == 4 and not only["flagged"]
    assert [(p["path"], p["writers"][0]["pid"]) for p in only["problems"]] == [(str(held), writer.pid)]
    assert "runs without a set" in sv("status", repo=repo, env_extra=x).stdout
