"""JSON round trips and human sentences of the open-file value types."""

from __future__ import annotations

import json

import pytest

import shadowvault.openfiles as of
from shadowvault.openfiles import (
    Attempt,
    BreakState,
    Classification,
    FileOutcome,
    LeaseState,
    LockState,
    Reason,
    Strategy,
    WriterInfo,
)
from shadowvault.openfiles.model import describe_writers


def test_public_api_is_curated() -> None:
    assert of.__doc__ and "Strategy" in of.__doc__
    for name in of.__all__:
        assert hasattr(of, name), name
    assert sorted(of.__all__) == of.__all__


def test_enum_values_are_the_config_and_json_keys() -> None:
    assert [s.value for s in Strategy] == ["try-deny-write", "deny-write", "prevent-write", "allow-write"]
    assert Strategy("prevent-write") is Strategy.PREVENT_WRITE
    assert {c.value for c in Classification} == {"ok", "suspect", "failed"}
    for code in (
        "changed-during-read",
        "open-for-writing",
        "lease-broken",
        "lock-refused",
        "lease-refused",
        "vanished",
        "permission-denied",
        "io-error",
    ):
        assert Reason(code).value == code


def test_outcome_json_has_stable_keys_and_round_trips() -> None:
    out = FileOutcome(
        Classification.FAILED,
        Reason.OPEN_FOR_WRITING,
        "open for writing by postgres (pid 812)",
        3,
        (WriterInfo(812, "postgres"), WriterInfo(9, "bash")),
    )
    data = out.to_json()
    assert data == {
        "class": "failed",
        "reason": "open-for-writing",
        "message": "open for writing by postgres (pid 812)",
        "attempts": 3,
        "writers": [{"pid": 812, "command": "postgres"}, {"pid": 9, "command": "bash"}],
    }
    assert FileOutcome.from_json(json.loads(json.dumps(data))) == out


def test_ok_outcome_for_consistent_sources() -> None:
    out = FileOutcome.ok()
    assert out.classification is Classification.OK
    assert out.reason is Reason.SNAPSHOT
    assert out.attempts == 1 and out.writers == ()
    assert FileOutcome.from_json(out.to_json()) == out


def test_attempt_json_round_trip() -> None:
    a = Attempt(
        number=2,
        lease=LeaseState.REFUSED,
        lock=LockState.GRANTED,
        lease_break=BreakState.OUTLASTED,
        changed=("size", "mtime"),
        writers=(WriterInfo(5, "vim"),),
        error=Reason.IO_ERROR,
        detail="Input/output error",
        bytes_read=4096,
        started=1.5,
        duration=0.25,
    )
    assert Attempt.from_json(json.loads(json.dumps(a.to_json()))) == a
    assert Attempt.from_json({"number": 1}) == Attempt(number=1)


def test_unknown_codes_are_rejected() -> None:
    with pytest.raises(ValueError):
        FileOutcome.from_json({"class": "maybe", "reason": "vanished", "message": "", "attempts": 1})


def test_writer_sentences() -> None:
    assert WriterInfo(812, "postgres").describe() == "postgres (pid 812)"
    assert describe_writers([]) == ""
    assert describe_writers([WriterInfo(1, "a")]) == "a (pid 1)"
    assert describe_writers([WriterInfo(1, "a"), WriterInfo(2, "b"), WriterInfo(3, "c")]) == (
        "a (pid 1), b (pid 2) and c (pid 3)"
    )
