"""Injected faults: their configuration, and the pure decision for one request or one new file system.

A driver is only as good as its handling of a misbehaving cloud, so the emulator can misbehave on purpose:
throttle, fail with an HTTP 5xx, answer slowly, lose an answer after acting (``timeout``), and let a new file
system fail or never finish creating. Each decision takes one uniform draw from the RNG it is given, so a
seeded run is reproducible and a test can pass its own ``random.Random``.
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from enum import StrEnum


@dataclass(frozen=True)
class FaultConfig:
    """Everything a test may change while the emulator runs.

    Rates are probabilities per request (or per new file system) in [0, 1]; ``actions`` limits the request
    faults to those actions (empty: every action). The admin API is never faulted. ``create_delay`` and
    ``delete_delay`` (seconds) are here too, because a test that wants a slow creation should not need a
    restart; a changed delay applies to file systems created or deleted afterwards.

    ``fail_action``, ``fail_code`` and ``fail_after`` script an API error instead of drawing one: after
    ``fail_after`` requests of ``fail_action`` have run normally, every later one answers the error
    ``fail_code`` (without acting) until the configuration is replaced. That is how a test fails exactly the
    step it means to, say the first DescribeMountTargets after a creation, with a code the driver must not
    retry (``UnauthorizedOperation``) or one it must (``InternalError``).
    """

    create_delay: float = 1.0
    delete_delay: float = 0.0
    quota_delay: float = 0.0
    snapshot_delay: float = 1.0
    throttle_rate: float = 0.0
    error_rate: float = 0.0
    error_status: int = 502
    latency_ms: float = 0.0
    timeout_rate: float = 0.0
    timeout_delay: float = 30.0
    create_failed_rate: float = 0.0
    stuck_rate: float = 0.0
    actions: tuple[str, ...] = field(default=())
    fail_action: str = ""
    fail_code: str = ""
    fail_after: int = 0

    def __post_init__(self) -> None:
        for name in ("throttle_rate", "error_rate", "timeout_rate", "create_failed_rate", "stuck_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {rate}")
        if self.throttle_rate + self.error_rate + self.timeout_rate > 1.0:
            raise ValueError("throttle_rate + error_rate + timeout_rate must not exceed 1")
        if self.create_failed_rate + self.stuck_rate > 1.0:
            raise ValueError("create_failed_rate + stuck_rate must not exceed 1")
        for name in ("create_delay", "delete_delay", "quota_delay", "snapshot_delay", "latency_ms", "timeout_delay"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if not 500 <= self.error_status <= 599:
            raise ValueError(f"error_status must be an HTTP 5xx status, not {self.error_status}")
        if bool(self.fail_action) != bool(self.fail_code):
            raise ValueError("fail_action and fail_code go together")
        if self.fail_code and not _ERROR_CODE.fullmatch(self.fail_code):
            raise ValueError(f"fail_code {self.fail_code[:64]!r} is not an API error code (like InternalError)")
        if self.fail_after < 0:
            raise ValueError("fail_after must not be negative")

    @classmethod
    def from_json(cls, data: object, base: FaultConfig | None = None) -> FaultConfig:
        """Build from a JSON object (the body of ``PUT /admin/faults``); missing keys keep ``base``'s values."""
        if not isinstance(data, Mapping):
            raise ValueError("the fault configuration must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(map(str, unknown))}")
        values: dict[str, object] = {}
        for name, value in data.items():
            if name == "actions":
                if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
                    raise ValueError("actions must be a list of action names")
                values[name] = tuple(value)
            elif name in ("error_status", "fail_after"):
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ValueError(f"{name} must be an integer")
                values[name] = value
            elif name in ("fail_action", "fail_code"):
                if not isinstance(value, str):
                    raise ValueError(f"{name} must be a string")
                values[name] = value
            else:
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ValueError(f"{name} must be a number")
                values[name] = float(value)
        return replace(base or cls(), **values)  # type: ignore[arg-type]

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["actions"] = list(self.actions)
        return data


_ERROR_CODE = re.compile(r"[A-Za-z]+(\.[A-Za-z0-9]+)*")


class FaultKind(StrEnum):
    NONE = "none"
    THROTTLE = "throttle"
    ERROR = "error"
    TIMEOUT = "timeout"


@dataclass(frozen=True)
class RequestFault:
    """What to do to one API request: ``latency`` (seconds) is added before answering; ``ERROR`` answers
    HTTP ``status``; for ``TIMEOUT`` the action runs and commits and the answer is held back
    ``timeout_delay`` seconds more."""

    kind: FaultKind = FaultKind.NONE
    latency: float = 0.0
    timeout_delay: float = 0.0
    status: int = 0


class Outcome(StrEnum):
    """What a new file system will become when its creation delay has passed."""

    AVAILABLE = "available"
    CREATE_FAILED = "create_failed"
    STUCK = "stuck"


def decide_request(config: FaultConfig, action: str, rng: random.Random) -> RequestFault:
    if config.actions and action not in config.actions:
        return RequestFault()
    latency = config.latency_ms / 1000.0
    draw = rng.random()
    if draw < config.throttle_rate:
        return RequestFault(FaultKind.THROTTLE, latency)
    draw -= config.throttle_rate
    if draw < config.error_rate:
        return RequestFault(FaultKind.ERROR, latency, status=config.error_status)
    draw -= config.error_rate
    if draw < config.timeout_rate:
        return RequestFault(FaultKind.TIMEOUT, latency, config.timeout_delay)
    return RequestFault(FaultKind.NONE, latency)


def decide_outcome(config: FaultConfig, rng: random.Random) -> Outcome:
    draw = rng.random()
    if draw < config.create_failed_rate:
        return Outcome.CREATE_FAILED
    if draw < config.create_failed_rate + config.stuck_rate:
        return Outcome.STUCK
    return Outcome.AVAILABLE


class Faults:
    """The live configuration and the one RNG, shared by the request threads (hence the lock).

    ``baseline`` is the start-up configuration (the flags): ``PUT /admin/faults`` replaces the live
    configuration with the body, keys left out taking their baseline values, so ``{}`` restores the start.
    """

    def __init__(self, config: FaultConfig, rng: random.Random) -> None:
        self.baseline = config
        self._config = config
        self._rng = rng
        self._lock = threading.Lock()
        self._scripted_seen = 0

    @property
    def config(self) -> FaultConfig:
        with self._lock:
            return self._config

    def replace(self, config: FaultConfig) -> None:
        with self._lock:
            self._config = config
            self._scripted_seen = 0

    def scripted_error(self, action: str) -> str | None:
        """The error code this request of ``action`` must answer (see :class:`FaultConfig`), or ``None``."""
        with self._lock:
            if not self._config.fail_code or action != self._config.fail_action:
                return None
            self._scripted_seen += 1
            return self._config.fail_code if self._scripted_seen > self._config.fail_after else None

    def for_request(self, action: str) -> RequestFault:
        with self._lock:
            return decide_request(self._config, action, self._rng)

    def for_new_file_system(self) -> Outcome:
        with self._lock:
            return decide_outcome(self._config, self._rng)
