"""The timer wheel: every connection's deadline, behind one loop timer.

A deadline is met never early (the core acts only at or after it), at most a
thirty-second of its delay late (plus the loop's own lateness), once; a
cancelled one not at all; and a wheel with nothing armed leaves no timer on
the loop. The entries here are real objects on a real event loop.
"""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from mqttref.impl.broker.timers import BATCH, Bucket, TimerWheel, bucket_time, granularity


class Alarm:
    """An entry that records when it was told."""

    def __init__(self, wheel: TimerWheel, deadline: float | None = None) -> None:
        self.wheel = wheel
        self.timer_bucket: Bucket | None = None
        self.deadline = deadline
        self.told: list[float] = []

    def timer_due(self, now: float) -> None:
        self.told.append(now)


@given(now=st.floats(0, 1e6), delay=st.floats(-10, 1e4))
def test_a_deadline_goes_into_a_bucket_at_or_after_it_at_most_a_32nd_of_its_delay_later(
    now: float, delay: float
) -> None:
    deadline = now + delay
    when = bucket_time(deadline, now)
    assert when >= deadline
    assert when - deadline <= max((deadline - now) / 32, granularity(0.0))


@given(
    now=st.floats(0, 1e6),
    shortest=st.floats(0.1, 1e4),
    spread=st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=2000),
)
def test_deadlines_within_one_doubling_share_at_most_67_buckets(
    now: float, shortest: float, spread: list[float]
) -> None:
    """However many connections: bucket widths are 1/64 to 1/32 of the delay."""
    buckets = {bucket_time(now + shortest * (1 + s), now) for s in spread}
    assert len(buckets) <= 67


async def until_told(alarms: list[Alarm], timeout: float = 5.0) -> None:
    async def wait() -> None:
        while not all(alarm.told for alarm in alarms):
            await asyncio.sleep(0.005)

    await asyncio.wait_for(wait(), timeout)


def test_each_entry_is_told_once_at_or_after_its_deadline() -> None:
    async def main() -> tuple[list[Alarm], TimerWheel]:
        loop = asyncio.get_running_loop()
        wheel = TimerWheel(loop)
        now = loop.time()
        alarms = [Alarm(wheel, now + delay) for delay in (0.05, 0.01, 0.03, 0.03, 0.0, -1.0)]
        for alarm in alarms:
            assert alarm.deadline is not None
            wheel.arm(alarm, alarm.deadline)
        assert len(wheel) == len(alarms)
        await until_told(alarms)
        await asyncio.sleep(0.1)
        return alarms, wheel

    alarms, wheel = asyncio.run(main())
    for alarm in alarms:
        assert alarm.deadline is not None
        assert len(alarm.told) == 1
        assert alarm.told[0] >= alarm.deadline
        assert alarm.timer_bucket is None
    assert len(wheel) == 0
    assert wheel.next_due is None


def test_a_cancelled_entry_is_not_told_and_an_empty_wheel_leaves_no_loop_timer() -> None:
    async def main() -> tuple[Alarm, Alarm, TimerWheel, float | None]:
        loop = asyncio.get_running_loop()
        wheel = TimerWheel(loop)
        cancelled, kept = Alarm(wheel), Alarm(wheel)
        wheel.arm(cancelled, loop.time() + 0.02)
        wheel.arm(kept, loop.time() + 0.04)
        wheel.cancel(cancelled)
        await until_told([kept])
        wheel.arm(cancelled, loop.time() + 60)
        wheel.cancel(cancelled)
        after_cancel = wheel.next_due
        await asyncio.sleep(0.06)
        return cancelled, kept, wheel, after_cancel

    cancelled, kept, wheel, after_cancel = asyncio.run(main())
    assert cancelled.told == []
    assert len(kept.told) == 1
    assert after_cancel is None
    assert len(wheel) == 0


def test_an_entry_moved_earlier_is_told_once_at_the_earlier_deadline() -> None:
    async def main() -> tuple[Alarm, float, TimerWheel]:
        loop = asyncio.get_running_loop()
        wheel = TimerWheel(loop)
        alarm = Alarm(wheel)
        wheel.arm(alarm, loop.time() + 0.2)
        earlier = loop.time() + 0.02
        wheel.arm(alarm, earlier)
        assert len(wheel) == 1
        await asyncio.sleep(0.3)  # past the first bucket, whose reference is stale
        return alarm, earlier, wheel

    alarm, earlier, wheel = asyncio.run(main())
    assert len(alarm.told) == 1
    assert earlier <= alarm.told[0] < earlier + 0.2
    assert len(wheel) == 0


class Rearming(Alarm):
    """An entry whose core finds nothing to do and asks for a deadline already past."""

    def timer_due(self, now: float) -> None:
        super().timer_due(now)
        if len(self.told) < 3:
            self.wheel.arm(self, now - 1.0)


def test_an_entry_rearming_in_the_past_is_told_again_on_a_later_run_not_in_a_loop() -> None:
    async def main() -> Rearming:
        loop = asyncio.get_running_loop()
        wheel = TimerWheel(loop)
        alarm = Rearming(wheel)
        wheel.arm(alarm, loop.time())
        while len(alarm.told) < 3:
            before = len(alarm.told)
            await asyncio.sleep(0)
            assert len(alarm.told) - before <= 1  # one call per loop run at most
        return alarm

    alarm = asyncio.run(asyncio.wait_for(main(), 5.0))
    assert len(alarm.told) == 3


class Counted(Alarm):
    """An entry that counts, per loop turn, how many entries were told in it."""

    def __init__(self, wheel: TimerWheel, turns: list[int], told_in: dict[int, int]) -> None:
        super().__init__(wheel)
        self.turns = turns
        self.told_in = told_in

    def timer_due(self, now: float) -> None:
        super().timer_due(now)
        self.told_in[self.turns[0]] = self.told_in.get(self.turns[0], 0) + 1


def test_many_entries_due_at_once_are_told_a_batch_per_loop_turn() -> None:
    """2,000 sockets opened together time out together; the loop serves other work
    between batches of their closes, so no client waits behind all of them."""
    turns = [0]
    told_in: dict[int, int] = {}

    async def main() -> tuple[list[Counted], TimerWheel]:
        loop = asyncio.get_running_loop()

        async def count_turns() -> None:
            while True:
                turns[0] += 1
                await asyncio.sleep(0)

        counter = loop.create_task(count_turns())
        wheel = TimerWheel(loop)
        deadline = loop.time() + 0.02
        alarms = [Counted(wheel, turns, told_in) for _ in range(2000)]
        for alarm in alarms:
            wheel.arm(alarm, deadline)
        await until_told(list(alarms))
        counter.cancel()
        return alarms, wheel

    alarms, wheel = asyncio.run(main())
    assert all(len(alarm.told) == 1 for alarm in alarms)
    assert max(told_in.values()) <= BATCH
    assert len(told_in) >= 2000 // BATCH
    assert len(wheel) == 0
    assert wheel.next_due is None
