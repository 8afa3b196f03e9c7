"""`run_catchup` on an in-memory Events API, store, events queue, cursor and bus."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from events import stripe_event
from stripe_middleware.backfill.catchup import (
    DEFAULT_GRACE_SECONDS,
    EVENTS_API_RETENTION_SECONDS,
    FIRST_RUN_LOOKBACK_SECONDS,
    OVERLAP_SECONDS,
    WINDOW_SECONDS,
    Catchup,
    CatchupResult,
    UnpublishedGapError,
    run_catchup,
)
from stripe_middleware.backfill.reading import StripeReader
from stripe_middleware.commands.config import load_gateway_config
from stripe_middleware.ingest.ports import NotDurableError
from stripe_middleware.shared.contract import DetailType
from tests.fakes.ports import (
    FakeCatchupCursors,
    FakeClock,
    FakeFlakyEventQueue,
    FakePublisher,
    FakeRateLimiter,
    FakeStore,
    FakeStripeLister,
    stripe_failure,
)

NOW = 1_766_000_000
HOUR, DAY = 3600, 24 * 3600
TARGET = NOW - DEFAULT_GRACE_SECONDS  # where a run at NOW goes: events younger than that wait
EVENTS = "/v1/events"


def event(created: int, name: str | None = None) -> dict[str, Any]:
    return stripe_event("invoice.paid", event_id=f"evt_{name or created}", created=created)


@dataclass
class World:
    """The Events API and our side of a catch-up; `run` is one invocation of the catch-up Lambda."""

    stripe: FakeStripeLister = field(default_factory=FakeStripeLister)
    store: FakeStore = field(default_factory=FakeStore)
    queue: FakeFlakyEventQueue = field(default_factory=FakeFlakyEventQueue)
    cursors: FakeCatchupCursors = field(default_factory=FakeCatchupCursors)
    publisher: FakePublisher = field(default_factory=FakePublisher)
    limiter: FakeRateLimiter = field(default_factory=FakeRateLimiter)
    clock: FakeClock = field(default_factory=lambda: FakeClock(NOW))

    def run(self, *, since: int | None = None, windows: int | None = None) -> CatchupResult:
        """Run until done, or for `windows` windows (each takes a second of the fake clock)."""
        rate_limit = load_gateway_config().rate_limit
        catchup = Catchup(
            reader=StripeReader(
                self.stripe,
                self.limiter,
                lambda path: rate_limit.read_limits(False, path),
                sleep=lambda s: None,
            ),
            seen=self.store,
            queue=self.queue,
            cursors=self.cursors,
            publisher=self.publisher,
            livemode=False,
            clock=self.clock,
            on_window=lambda result: self.clock.advance(1),
        )
        deadline = self.clock.now + windows if windows is not None else None
        return run_catchup(catchup, since=since, deadline=deadline)

    def enqueued(self) -> list[str]:
        return [e.attributes["event_id"] for e in self.queue.events]

    def listed(self, *events: dict[str, Any]) -> None:
        self.stripe.add(EVENTS, *events)


@pytest.fixture
def world() -> World:
    world = World()
    world.cursors.until[False] = NOW - 3 * HOUR
    return world


def test_unseen_events_are_enqueued_oldest_first_as_from_the_events_api(world: World) -> None:
    events = [event(NOW - 2 * HOUR + 60 + n * 600, f"{n}") for n in (5, 1, 4, 0, 3, 2)]
    world.listed(*events)
    world.store.events = {"evt_1", "evt_4"}  # processed already (their webhook came)

    result = world.run()

    assert world.enqueued() == ["evt_0", "evt_2", "evt_3", "evt_5"]
    assert result.recovered == 4 and result.done and result.until == TARGET
    first = world.queue.events[0]
    assert json.loads(first.body) == events[3]
    assert first.attributes == {
        "event_id": "evt_0",
        "event_type": "invoice.paid",
        "account": "",
        "livemode": "false",
        "api_version": events[3]["api_version"],
        "route": "account",
        "source": "events_api",
    }


def test_an_event_listed_twice_is_enqueued_once(world: World) -> None:
    twice, once = event(NOW - 2 * HOUR + 1000), event(NOW - 2 * HOUR + 1001)
    world.listed(twice, once, twice)

    world.run()

    assert world.enqueued() == [twice["id"], once["id"]]


def test_an_event_in_the_overlap_of_two_windows_is_enqueued_once(world: World) -> None:
    boundary = NOW - 3 * HOUR + WINDOW_SECONDS  # the end of the first window
    world.listed(event(boundary - OVERLAP_SECONDS // 2), event(boundary))

    world.run()

    assert sorted(world.enqueued()) == [f"evt_{boundary - OVERLAP_SECONDS // 2}", f"evt_{boundary}"]


def test_the_cursor_advances_a_window_at_a_time(world: World) -> None:
    start = NOW - 3 * HOUR
    world.run()

    assert world.cursors.history == [start + WINDOW_SECONDS, start + 2 * WINDOW_SECONDS, TARGET]
    listed = [(c.params["created"]["gte"], c.params["created"]["lte"]) for c in world.stripe.calls]
    assert listed == [
        (start - OVERLAP_SECONDS, start + WINDOW_SECONDS),
        (start + WINDOW_SECONDS - OVERLAP_SECONDS, start + 2 * WINDOW_SECONDS),
        (start + 2 * WINDOW_SECONDS - OVERLAP_SECONDS, TARGET),
    ]


def test_a_rerun_from_an_older_time_never_moves_the_cursor_back(world: World) -> None:
    world.cursors.until[False] = NOW - HOUR

    result = world.run(since=NOW - 5 * HOUR, windows=2)

    assert not result.done and result.until == NOW - 3 * HOUR
    assert world.cursors.until[False] == NOW - HOUR
    finished = world.run()
    assert finished.done and world.cursors.until[False] == finished.target


def test_events_younger_than_the_grace_period_are_left_for_the_next_run(world: World) -> None:
    world.listed(event(TARGET - 1, "settled"), event(TARGET + 1, "in_flight"))

    world.run()
    assert world.enqueued() == ["evt_settled"] and world.cursors.until[False] == TARGET
    world.clock.advance(2 * DEFAULT_GRACE_SECONDS)
    world.store.events.add("evt_settled")  # the processor got to it meanwhile
    world.run()

    assert world.enqueued() == ["evt_settled", "evt_in_flight"]


def test_a_queue_outage_mid_window_keeps_the_cursor_at_the_last_full_window(world: World) -> None:
    start = NOW - 3 * HOUR
    events = [event(start + n * 600 + 1, f"{n:02d}") for n in range(18)]  # six per window
    world.listed(*events)
    world.queue.accept = 8  # window 1, then two of window 2

    with pytest.raises(NotDurableError):
        world.run()
    assert world.cursors.until[False] == start + WINDOW_SECONDS
    world.queue.recover()
    world.run()

    assert set(world.enqueued()) == {e["id"] for e in events}
    assert world.enqueued()[:6] == [f"evt_{n:02d}" for n in range(6)]
    assert world.enqueued()[8:] == [f"evt_{n:02d}" for n in range(6, 18)]  # the rerun starts at window 2


def test_a_cursor_older_than_the_events_api_keeps_reports_one_gap_and_goes_on(world: World) -> None:
    cursor = NOW - 40 * DAY
    world.cursors.until[False] = cursor
    oldest = NOW - EVENTS_API_RETENTION_SECONDS
    world.listed(event(oldest - 1, "gone"), event(oldest + HOUR + 1000, "kept"))

    result = world.run()
    world.clock.advance(HOUR)
    world.run()

    [gap] = world.publisher.details(DetailType.CATCHUP_GAP)
    assert result.gap == gap and result.done
    day = datetime.fromtimestamp(cursor, UTC).strftime("%Y-%m-%d")
    assert gap["missed_from"] == datetime.fromtimestamp(cursor, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert gap["suggestion"] == f"stripe-middleware backfill --created-gte {day}"
    assert world.stripe.calls[0].params["created"]["gte"] == oldest
    assert world.enqueued() == ["evt_kept"]


def test_an_unpublished_gap_fails_the_run_and_leaves_the_cursor(world: World) -> None:
    world.cursors.until[False] = NOW - 40 * DAY
    world.publisher.fail_all = True

    with pytest.raises(UnpublishedGapError):
        world.run()

    assert world.cursors.until[False] == NOW - 40 * DAY
    assert world.stripe.calls == [] and world.queue.events == []
    world.publisher.fail_all = False
    world.run()
    assert len(world.publisher.details(DetailType.CATCHUP_GAP)) == 1


def test_a_first_run_looks_back_one_day(world: World) -> None:
    del world.cursors.until[False]
    world.listed(event(NOW - 2 * DAY, "old"), event(NOW - DAY + 60, "recent"))

    result = world.run()

    assert result.since == NOW - FIRST_RUN_LOOKBACK_SECONDS and result.done
    assert (
        world.stripe.calls[0].params["created"]["gte"] == NOW - FIRST_RUN_LOOKBACK_SECONDS - OVERLAP_SECONDS
    )
    assert world.enqueued() == ["evt_recent"]


def test_since_overrides_the_cursor(world: World) -> None:
    world.listed(event(NOW - 4 * HOUR + 1000, "before_cursor"), event(NOW - 2 * HOUR + 1000, "after_cursor"))

    world.run(since=NOW - 5 * HOUR)
    assert world.enqueued() == ["evt_before_cursor", "evt_after_cursor"]
    world.queue.events.clear()
    world.run(since=NOW - HOUR)
    assert world.enqueued() == []


def test_a_deadline_stops_the_run_early_and_the_next_run_finishes(world: World) -> None:
    events = [event(NOW - 3 * HOUR + n * 1200 + 1, f"{n}") for n in range(9)]
    world.listed(*events)

    stopped = world.run(windows=1)

    assert not stopped.done and stopped.until == NOW - 2 * HOUR
    assert world.cursors.until[False] == stopped.until
    finished = world.run()
    assert finished.done and set(world.enqueued()) == {e["id"] for e in events}


def test_every_events_api_call_waits_for_a_read_slot_and_rate_limits_wait(world: World) -> None:
    world.listed(event(NOW - 2 * HOUR + 1000, "one"))
    world.stripe.fail_after(1, *[stripe_failure(429, rate_limited=True)] * 20)

    assert world.run().done

    assert world.enqueued() == ["evt_one"]
    assert len(world.limiter.requests) == len(world.stripe.calls) == 3 + 20
    assert all(("test:read", 10) in keys for keys in world.limiter.requests)
