"""The watchdog's rule: ping once per progress, never while a job hangs."""

from __future__ import annotations

from syncd.daemon.liveness import Liveness


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_ping_is_earned_by_progress_once() -> None:
    ticks = Ticks()
    live = Liveness(hung_after_s=60, clock=ticks)
    assert not live.may_ping()  # nothing has run yet
    live.started("work")
    assert not live.may_ping()  # started is no progress
    live.finished("work")
    assert live.may_ping()
    assert not live.may_ping()  # the same progress does not pay twice
    live.started("poll:zendesk")
    ticks.now = 30
    live.beat("poll:zendesk")  # a page, a timer, an intent
    assert live.may_ping()


def test_a_silent_job_withholds_pings_while_others_progress() -> None:
    ticks = Ticks()
    live = Liveness(hung_after_s=60, clock=ticks)
    live.started("poll:zendesk")  # and never returns
    for minute in range(1, 4):
        ticks.now = minute * 30.0
        live.started("work")
        live.finished("work")
        assert live.may_ping() == (ticks.now <= 60)
    assert live.hung() == ["poll:zendesk"]
    live.finished("poll:zendesk")
    live.finished("work")
    assert live.hung() == [] and live.may_ping()
