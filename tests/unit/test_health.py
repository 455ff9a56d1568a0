"""When a worker counts as unable to do its job: the reasons /healthz gives with its 503."""

from __future__ import annotations

from types import SimpleNamespace

from streams.health import Health, crash_of


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def health(stall_s: float = 30, recovery_s: float = 120) -> tuple[Health, Clock]:
    clock = Clock()
    return Health(stall_s, recovery_s, clock=clock), clock


def test_a_worker_that_recovered_and_keeps_up_is_healthy():
    h, clock = health()
    h.recovered()
    clock.now += 600
    assert h.problems(lag=0) == []


def test_lag_without_progress_beyond_the_limit_is_a_stall():
    h, clock = health(stall_s=30)
    h.recovered()
    clock.now += 29
    assert h.problems(lag=5) == []
    clock.now += 2
    [problem] = h.problems(lag=5)
    assert problem.kind == "stalled" and "5 messages waiting" in problem.reason and "31 s" in problem.reason


def test_progress_resets_the_stall_clock():
    h, clock = health(stall_s=30)
    h.recovered()
    clock.now += 25
    h.progressed()
    clock.now += 25
    assert h.problems(lag=5) == []


def test_a_recovery_not_finished_in_time_is_a_problem_and_no_stall_is_claimed_meanwhile():
    h, clock = health(stall_s=30, recovery_s=120)
    h.recovered()
    h.rebalance_started()
    clock.now += 100
    assert h.problems(lag=50) == []
    clock.now += 21
    [problem] = h.problems(lag=50)
    assert problem.kind == "recovery_unfinished" and "after 121 s" in problem.reason


def test_a_second_rebalance_keeps_the_time_of_the_first():
    h, clock = health(recovery_s=120)
    h.recovered()
    h.rebalance_started()
    clock.now += 100
    h.rebalance_started()
    clock.now += 21
    assert [p.kind for p in h.problems(lag=0)] == ["recovery_unfinished"]


def test_a_crashed_agent_is_a_problem_with_its_reason():
    h, _ = health()
    h.recovered()
    actor = SimpleNamespace(crashed=True, crash_reason=RuntimeError("boom"))
    app = SimpleNamespace(crashed=False, crash_reason=None,
                          agents={"a": SimpleNamespace(name="lienthong.count-and-flag", _actors=[actor])})
    crash = crash_of(app)
    [problem] = h.problems(lag=0, crashed=crash)
    assert problem.kind == "agent_crashed" and "RuntimeError('boom')" in problem.reason


def test_a_crashed_app_is_reported():
    app = SimpleNamespace(crashed=True, crash_reason=ValueError("x"), agents={})
    assert crash_of(app) == "ValueError('x')"
    assert crash_of(SimpleNamespace(crashed=False, crash_reason=None, agents={})) is None
