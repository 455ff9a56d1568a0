"""The worker runs CPython's cycle collector for a large, acyclic state."""

from __future__ import annotations

import gc

from streams.worker import GC_YOUNG_THRESHOLD, tune_gc


def test_worker_collects_young_cycles_less_often_and_freezes_start_up_objects() -> None:
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, before[1], before[2])
        assert GC_YOUNG_THRESHOLD > before[0]
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_worker_fixes_glibc_mmap_threshold_so_large_freed_buffers_go_back_to_the_system() -> None:
    from streams.worker import tune_malloc

    assert tune_malloc() is True  # glibc: mallopt accepted the fixed threshold
