"""Session-level behaviour of OpenFiles: the SIGIO handler, fallbacks, warnings, cleanup."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

from tests.openfiles.of_helpers import HOLD_OPEN_FOR_WRITING, Child

from shadowvault.openfiles import (
    Classification,
    FileOutcome,
    LeaseState,
    OpenFiles,
    Reason,
    RetryPolicy,
    Strategy,
    WriterInfo,
    decide,
)
from shadowvault.openfiles.platform import StatOnlyGuards


def quiet_file(tmp_path: Path) -> Path:
    p = tmp_path / "quiet"
    p.write_bytes(os.urandom(10_000))
    return p


def test_handler_installed_for_the_session_and_restored(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGIO)
    of = OpenFiles()
    assert signal.getsignal(signal.SIGIO) not in (before, signal.SIG_DFL)
    of.close()
    of.close()
    assert signal.getsignal(signal.SIGIO) == before


def test_close_releases_leases_of_unfinished_attempts(tmp_path: Path) -> None:
    p = quiet_file(tmp_path)
    probe = "fd = os.open(sys.argv[2], os.O_WRONLY | os.O_NONBLOCK)\nprint('opened', flush=True)\n"
    of = OpenFiles()
    att = of.attempt(p, Strategy.DENY_WRITE)
    att.read(10)
    with Child(probe, str(p)) as w:
        assert w.line() == ""  # EWOULDBLOCK: our lease is held
    of.close()  # would otherwise leave a lease whose break signal has no handler
    assert att.result().bytes_read == 10
    with Child(probe, str(p)) as w:
        assert w.line() == "opened"


def test_outside_the_main_thread_no_leases_one_warning_no_crash(tmp_path: Path) -> None:
    p = quiet_file(tmp_path)
    warnings: list[str] = []
    outcomes: list[FileOutcome] = []
    leases: list[LeaseState] = []

    def session() -> None:
        with OpenFiles(on_warning=warnings.append) as of:
            for strategy in Strategy:
                with of.attempt(p, strategy) as att:
                    att.read()
                leases.append(att.result().lease)
                out = decide([att.result()], strategy, RetryPolicy())
                assert isinstance(out, FileOutcome)
                outcomes.append(out)

    t = threading.Thread(target=session)
    t.start()
    t.join(30)
    assert len(warnings) == 1 and "main thread" in warnings[0]
    assert leases == [LeaseState.UNSUPPORTED] * 4
    assert [(o.classification, o.reason) for o in outcomes] == [
        (Classification.OK, Reason.UNCHANGED),
        (Classification.OK, Reason.UNCHANGED),
        (Classification.OK, Reason.READ_UNDER_LOCK),  # locks need no signal handler
        (Classification.OK, Reason.UNCHANGED),
    ]


def test_stat_only_platform_names_writers_from_proc(tmp_path: Path) -> None:
    p = quiet_file(tmp_path)
    warnings: list[str] = []
    with (
        Child(HOLD_OPEN_FOR_WRITING, str(p), comm="svholder") as w,
        OpenFiles(on_warning=warnings.append, guards=StatOnlyGuards()) as of,
    ):
        w.wait_ready()
        results = {}
        for strategy in Strategy:
            with of.attempt(p, strategy) as att:
                att.read()
            out = decide([att.result()], strategy, RetryPolicy())
            assert isinstance(out, FileOutcome)
            results[strategy] = (out.classification, out.reason, out.writers)
    holder = (WriterInfo(w.pid, "svholder"),)
    assert results == {
        Strategy.TRY_DENY_WRITE: (Classification.SUSPECT, Reason.OPEN_FOR_WRITING, holder),
        Strategy.DENY_WRITE: (Classification.FAILED, Reason.OPEN_FOR_WRITING, holder),
        # no locks on this platform either: nothing held the writer off
        Strategy.PREVENT_WRITE: (Classification.FAILED, Reason.OPEN_FOR_WRITING, holder),
        Strategy.ALLOW_WRITE: (Classification.SUSPECT, Reason.OPEN_FOR_WRITING, holder),
    }
    assert len(warnings) == 1 and "not available" in warnings[0]
