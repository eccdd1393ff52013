"""engine.collector: the automatic cycle collector off during a walk, cycles still found."""

from __future__ import annotations

import gc
import weakref

from shadowvault.engine.collector import CollectorPause


class _Cyclic:
    def __init__(self) -> None:
        self.me = self


def test_the_collector_is_off_inside_and_as_before_afterwards() -> None:
    assert gc.isenabled()
    with CollectorPause(every=10):
        assert not gc.isenabled()
        assert gc.get_freeze_count() > 0  # what existed at the start is left out of collections
    assert gc.isenabled() and gc.get_freeze_count() == 0
    gc.disable()
    try:
        with CollectorPause():
            pass
        assert not gc.isenabled()  # a caller's choice is kept
    finally:
        gc.enable()


def test_overlapping_sessions_resume_the_collector_only_when_the_last_one_ends() -> None:
    first, second = CollectorPause(), CollectorPause()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert not gc.isenabled()  # the second session still runs
    second.__exit__(None, None, None)
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_a_cycle_made_during_the_walk_is_collected_at_the_next_tick() -> None:
    with CollectorPause(every=1_000) as pause:
        obj = _Cyclic()
        ref = weakref.ref(obj)
        del obj
        pause.tick(999)
        assert ref() is not None  # not due yet: the collector is off
        pause.tick(1)
        assert ref() is None
        survivor = _Cyclic()
        pause.tick(1_000)
        frozen = gc.get_freeze_count()
        assert frozen > 0 and survivor.me is survivor  # alive objects are frozen, not freed
