"""The pure half of leader election: what to do with a Lease as read, and how its timestamps reach the wire."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from cfs_csi.kube.lease import (
    Action,
    Decision,
    LeaderElector,
    LeaseRecord,
    MicroTime,
    _spec,
    decide,
    default_identity,
    lease_expiry,
    parse_time,
    record_of,
    released,
)
from cfs_csi.kube.rest import Client, Config

ME = "replica-a_1234abcd"
OTHER = "replica-b_5678ef01"
NOW = datetime(2025, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)
DURATION = 15


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def held(
    holder: str,
    renewed: datetime | None,
    duration: int | None = DURATION,
    acquire_time: datetime | None = None,
    transitions: int = 0,
) -> LeaseRecord:
    return LeaseRecord(holder, renewed, duration, acquire_time, transitions)


CASES = [
    pytest.param(None, Decision(Action.CREATE, LeaseRecord(ME, NOW, DURATION, NOW, 0)), id="no-lease-create"),
    pytest.param(
        held(ME, ago(5), acquire_time=ago(100), transitions=3),
        Decision(Action.RENEW, LeaseRecord(ME, NOW, DURATION, ago(100), 3)),
        id="mine-renew-keeps-tenure",
    ),
    pytest.param(
        held(ME, ago(60), acquire_time=ago(100), transitions=3),
        Decision(Action.RENEW, LeaseRecord(ME, NOW, DURATION, ago(100), 3)),
        id="mine-even-if-lapsed-renew",
    ),
    pytest.param(
        held(ME, ago(5), acquire_time=None),
        Decision(Action.RENEW, LeaseRecord(ME, NOW, DURATION, NOW, 0)),
        id="mine-without-acquire-time",
    ),
    pytest.param(
        held(OTHER, ago(5)),
        Decision(Action.WAIT, holder=OTHER, expires=ago(5) + timedelta(seconds=DURATION)),
        id="other-valid-wait",
    ),
    pytest.param(
        held(OTHER, ago(DURATION) + timedelta(microseconds=1)),
        Decision(Action.WAIT, holder=OTHER, expires=NOW + timedelta(microseconds=1)),
        id="other-one-microsecond-left-wait",
    ),
    pytest.param(
        held(OTHER, ago(DURATION), acquire_time=ago(100), transitions=2),
        Decision(Action.TAKE_OVER, LeaseRecord(ME, NOW, DURATION, NOW, 3)),
        id="other-lapses-exactly-now-take-over",
    ),
    pytest.param(
        held(OTHER, ago(3600), transitions=7),
        Decision(Action.TAKE_OVER, LeaseRecord(ME, NOW, DURATION, NOW, 8)),
        id="other-long-expired-take-over",
    ),
    pytest.param(
        held(OTHER, NOW + timedelta(seconds=30)),
        Decision(Action.WAIT, holder=OTHER, expires=NOW + timedelta(seconds=30 + DURATION)),
        id="other-clock-ahead-wait",
    ),
    pytest.param(
        held(OTHER, ago(30), duration=60),
        Decision(Action.WAIT, holder=OTHER, expires=ago(30) + timedelta(seconds=60)),
        id="their-longer-duration-counts",
    ),
    pytest.param(
        held(OTHER, ago(5), duration=2),
        Decision(Action.TAKE_OVER, LeaseRecord(ME, NOW, DURATION, NOW, 1)),
        id="their-shorter-duration-counts",
    ),
    pytest.param(
        held(OTHER, ago(5), duration=None),
        Decision(Action.WAIT, holder=OTHER, expires=ago(5) + timedelta(seconds=DURATION)),
        id="no-duration-uses-ours",
    ),
    pytest.param(
        held(OTHER, None, acquire_time=ago(5)),
        Decision(Action.WAIT, holder=OTHER, expires=ago(5) + timedelta(seconds=DURATION)),
        id="acquired-never-renewed-wait",
    ),
    pytest.param(
        held(OTHER, None),
        Decision(Action.TAKE_OVER, LeaseRecord(ME, NOW, DURATION, NOW, 1)),
        id="no-timestamps-take-over",
    ),
    pytest.param(
        held("", ago(1), transitions=4),
        Decision(Action.TAKE_OVER, LeaseRecord(ME, NOW, DURATION, NOW, 5)),
        id="released-take-over-at-once",
    ),
    pytest.param(
        held(OTHER, ago(5).astimezone(timezone(timedelta(hours=8)))),
        Decision(Action.WAIT, holder=OTHER, expires=ago(5) + timedelta(seconds=DURATION)),
        id="other-time-zone-same-instant",
    ),
]


@pytest.mark.parametrize(("current", "expected"), CASES)
def test_decide(current: LeaseRecord | None, expected: Decision) -> None:
    assert decide(current, ME, NOW, DURATION) == expected


def test_written_records_carry_wire_timestamps_and_our_duration() -> None:
    for current in (None, held(ME, ago(1), duration=60), held(OTHER, ago(3600), duration=60)):
        record = decide(current, ME, NOW, DURATION).record
        assert record is not None
        assert isinstance(record.renew_time, MicroTime)
        assert isinstance(record.acquire_time, MicroTime)
        assert record.duration_seconds == DURATION


def test_lease_expiry() -> None:
    assert lease_expiry(held(OTHER, ago(5)), 99) == ago(5) + timedelta(seconds=DURATION)
    assert lease_expiry(held(OTHER, ago(5), duration=None), 99) == ago(5) + timedelta(seconds=99)
    assert lease_expiry(held(OTHER, None), 99) is None
    naive = datetime(2025, 1, 1, 0, 0, 0)
    assert lease_expiry(held(OTHER, naive), 99) == datetime(2025, 1, 1, 0, 0, DURATION, tzinfo=UTC)


def test_released_gives_up_only_our_own_lease() -> None:
    mine = held(ME, ago(3), acquire_time=ago(50), transitions=2)
    assert released(mine, ME, NOW) == LeaseRecord("", NOW, DURATION, ago(50), 2)
    assert released(held(OTHER, ago(3)), ME, NOW) is None
    assert released(held("", ago(3)), ME, NOW) is None
    # what release writes is free at once for the next replica
    freed = released(mine, ME, NOW)
    assert freed is not None
    assert decide(freed, OTHER, NOW, DURATION).action is Action.TAKE_OVER


@pytest.mark.parametrize(
    ("moment", "wire"),
    [
        (datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC), "2025-03-01T12:00:00.000000Z"),
        (datetime(2025, 3, 1, 12, 0, 0, 7, tzinfo=UTC), "2025-03-01T12:00:00.000007Z"),
        (datetime(2025, 3, 1, 20, 0, 0, 123456, tzinfo=timezone(timedelta(hours=8))), "2025-03-01T12:00:00.123456Z"),
        (datetime(2025, 3, 1, 12, 0, 0), "2025-03-01T12:00:00.000000Z"),  # naive: UTC
    ],
)
def test_micro_time_always_has_six_fraction_digits(moment: datetime, wire: str) -> None:
    stamp = MicroTime.of(moment)
    assert stamp.isoformat() == wire
    assert stamp.isoformat(timespec="seconds") == wire
    assert stamp == moment.replace(tzinfo=moment.tzinfo or UTC)


def test_written_spec_has_six_fraction_digits_and_keeps_fields_it_does_not_own() -> None:
    whole_second = MicroTime.of(datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC))
    record = LeaseRecord(ME, whole_second, 15, whole_second, 3)
    previous = {"holderIdentity": OTHER, "strategy": "OldestEmulationVersion", "preferredHolder": "p"}
    assert _spec(record, previous) == {
        "holderIdentity": ME, "leaseDurationSeconds": 15, "leaseTransitions": 3,
        "acquireTime": "2025-03-01T12:00:00.000000Z", "renewTime": "2025-03-01T12:00:00.000000Z",
        "strategy": "OldestEmulationVersion", "preferredHolder": "p",
    }  # fmt: skip
    released_record = LeaseRecord("", whole_second, 15, None, 3)
    assert "acquireTime" not in _spec(released_record, {"acquireTime": "2025-03-01T11:00:00.000000Z"})
    assert _spec(released_record, None)["holderIdentity"] == ""


def test_record_of_a_lease_as_the_api_returns_it() -> None:
    lease = {
        "metadata": {"name": "x", "namespace": "ns", "resourceVersion": "7"},
        "spec": {
            "holderIdentity": OTHER,
            "leaseDurationSeconds": 15,
            "acquireTime": "2025-03-01T11:00:00.000000Z",
            "renewTime": "2025-03-01T12:00:00.250000Z",
            "leaseTransitions": 2,
        },
    }
    assert record_of(lease) == LeaseRecord(OTHER, NOW, 15, datetime(2025, 3, 1, 11, tzinfo=UTC), 2)
    assert record_of({"metadata": {"name": "x"}}) == LeaseRecord("", None, None)
    assert record_of({"metadata": {"name": "x"}, "spec": {"holderIdentity": ""}}).holder == ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-03-01T12:00:00.250000Z", NOW),
        ("2025-03-01T12:00:00Z", NOW.replace(microsecond=0)),  # written by a client that drops a zero fraction
        ("2025-03-01T20:00:00.250000+08:00", NOW),
        (None, None),
        ("", None),
    ],
)
def test_parse_time(text: str | None, expected: datetime | None) -> None:
    assert parse_time(text) == expected


def test_default_identity_is_hostname_and_a_random_suffix() -> None:
    first, second = default_identity(), default_identity()
    assert first.startswith(socket.gethostname() + "_")
    assert first != second


@pytest.mark.parametrize(
    "periods",
    [
        {"lease_duration": 0},
        {"lease_duration": 2, "renew_period": 2},
        {"lease_duration": 2, "renew_period": 0},
        {"retry_period": 0},
    ],
)
def test_elector_refuses_periods_that_cannot_work(periods: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        LeaderElector(Client(Config(server="https://127.0.0.1:1")), "lease", "default", **periods)
