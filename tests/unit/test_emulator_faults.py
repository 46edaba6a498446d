"""Fault decisions with a seeded (or scripted) RNG, and the fault configuration's own checks."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from cfs_csi.emulator.faults import (
    FaultConfig,
    FaultKind,
    Faults,
    Outcome,
    RequestFault,
    decide_outcome,
    decide_request,
)


class Scripted(random.Random):
    """An RNG whose ``random()`` returns the given draws, to hit the band edges exactly."""

    def __init__(self, *draws: float) -> None:
        super().__init__(0)
        self._draws = list(draws)

    def random(self) -> float:
        return self._draws.pop(0)


BANDS = FaultConfig(throttle_rate=0.2, error_rate=0.1, timeout_rate=0.1, latency_ms=50, timeout_delay=7)

REQUEST_CASES = [
    (0.0, FaultKind.THROTTLE),
    (0.1999, FaultKind.THROTTLE),
    (0.2, FaultKind.ERROR),
    (0.2999, FaultKind.ERROR),
    (0.3001, FaultKind.TIMEOUT),
    (0.3999, FaultKind.TIMEOUT),
    (0.4001, FaultKind.NONE),
    (0.9999, FaultKind.NONE),
]


@pytest.mark.parametrize(("draw", "kind"), REQUEST_CASES)
def test_request_bands(draw: float, kind: FaultKind) -> None:
    fault = decide_request(BANDS, "CreateCfsFileSystem", Scripted(draw))
    assert fault.kind is kind
    assert fault.latency == pytest.approx(0.05)
    assert fault.timeout_delay == (7 if kind is FaultKind.TIMEOUT else 0)
    assert fault.status == (502 if kind is FaultKind.ERROR else 0)


def test_no_faults_by_default() -> None:
    rng = random.Random(1)
    assert {decide_request(FaultConfig(), "DescribeCfsFileSystems", rng) for _ in range(100)} == {RequestFault()}


def test_actions_limit_the_faults() -> None:
    config = FaultConfig(throttle_rate=1.0, latency_ms=10, actions=("CreateCfsFileSystem",))
    assert decide_request(config, "DescribeCfsFileSystems", Scripted()) == RequestFault()
    assert decide_request(config, "CreateCfsFileSystem", Scripted(0.5)).kind is FaultKind.THROTTLE


def test_seeded_runs_repeat_and_rates_hold() -> None:
    config = FaultConfig(throttle_rate=0.2, error_rate=0.05, timeout_rate=0.05)
    first = [decide_request(config, "A", random.Random(1126)).kind for _ in range(3)]
    rng_a, rng_b = random.Random(1126), random.Random(1126)
    run_a = [decide_request(config, "A", rng_a).kind for _ in range(10_000)]
    run_b = [decide_request(config, "A", rng_b).kind for _ in range(10_000)]
    assert run_a == run_b and first == [run_a[0]] * 3
    counts = Counter(run_a)
    assert 1800 < counts[FaultKind.THROTTLE] < 2200
    assert 350 < counts[FaultKind.ERROR] < 650
    assert 350 < counts[FaultKind.TIMEOUT] < 650


@pytest.mark.parametrize(
    ("draw", "outcome"),
    [(0.0, Outcome.CREATE_FAILED), (0.2999, Outcome.CREATE_FAILED), (0.3, Outcome.STUCK), (0.4999, Outcome.STUCK),
     (0.5, Outcome.AVAILABLE), (0.99, Outcome.AVAILABLE)],
)  # fmt: skip
def test_creation_outcome(draw: float, outcome: Outcome) -> None:
    assert decide_outcome(FaultConfig(create_failed_rate=0.3, stuck_rate=0.2), Scripted(draw)) is outcome


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        ({"throttle_rate": 1.5}, "throttle_rate"),
        ({"stuck_rate": -0.1}, "stuck_rate"),
        ({"throttle_rate": 0.6, "error_rate": 0.5}, "must not exceed 1"),
        ({"create_failed_rate": 0.6, "stuck_rate": 0.6}, "must not exceed 1"),
        ({"latency_ms": -1.0}, "latency_ms"),
        ({"create_delay": -1.0}, "create_delay"),
        ({"error_status": 404}, "5xx"),
    ],
)
def test_config_is_checked(settings: dict[str, float], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        FaultConfig(**settings)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ([], "JSON object"),
        ({"throttle": 0.5}, "unknown fault settings: throttle"),
        ({"error_rate": "0.5"}, "error_rate must be a number"),
        ({"error_rate": True}, "error_rate must be a number"),
        ({"error_status": 502.5}, "integer"),
        ({"actions": "CreateCfsFileSystem"}, "list"),
    ],
)
def test_json_is_checked(body: object, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        FaultConfig.from_json(body)


def test_json_keeps_the_baseline_for_missing_keys() -> None:
    baseline = FaultConfig(create_delay=0.3, throttle_rate=0.2)
    changed = FaultConfig.from_json({"stuck_rate": 1, "actions": ["CreateCfsFileSystem"]}, base=baseline)
    assert changed == FaultConfig(create_delay=0.3, throttle_rate=0.2, stuck_rate=1.0, actions=("CreateCfsFileSystem",))
    assert FaultConfig.from_json({}, base=baseline) == baseline
    assert FaultConfig.from_json(changed.to_json()) == changed


def test_live_faults_replace_and_decide() -> None:
    faults = Faults(FaultConfig(), random.Random(3))
    assert faults.for_request("X").kind is FaultKind.NONE
    faults.replace(FaultConfig(error_rate=1.0, stuck_rate=1.0))
    assert faults.for_request("X").kind is FaultKind.ERROR
    assert faults.for_new_file_system() is Outcome.STUCK
    assert faults.baseline == FaultConfig()


def test_scripted_errors_fail_one_action_after_its_first_requests() -> None:
    faults = Faults(FaultConfig(), random.Random(3))
    assert faults.scripted_error("DescribeMountTargets") is None
    faults.replace(FaultConfig.from_json(
        {"fail_action": "DescribeCfsFileSystems", "fail_code": "UnauthorizedOperation", "fail_after": 2}
    ))  # fmt: skip
    assert faults.scripted_error("DescribeMountTargets") is None  # another action: not counted, not failed
    seen = [faults.scripted_error("DescribeCfsFileSystems") for _ in range(4)]
    assert seen == [None, None, "UnauthorizedOperation", "UnauthorizedOperation"]
    faults.replace(faults.config)  # a new configuration starts counting again
    assert faults.scripted_error("DescribeCfsFileSystems") is None


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        ({"fail_action": "DescribeMountTargets"}, "go together"),
        ({"fail_code": "InternalError"}, "go together"),
        ({"fail_action": "X", "fail_code": "Bad Code!"}, "not an API error code"),
        ({"fail_action": "X", "fail_code": "InternalError", "fail_after": -1}, "fail_after"),
    ],
)
def test_scripted_errors_are_checked(settings: dict[str, object], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        FaultConfig(**settings)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=needle):
        FaultConfig.from_json(settings)
