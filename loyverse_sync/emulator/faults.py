"""Per-merchant fault injection for the Loyverse emulator.

A `FaultConfig` decides, for each authenticated request that matches its method/path
filter, whether to answer 500 or 429, hang then close (`timeout`), close the socket
without a response (`drop`), or answer late (`slow`). "Fail after write" applies a POST or
DELETE first and then answers 500 or drops the connection, which is what makes retries of
non-idempotent creates dangerous. Draws come from a seeded RNG so a run is reproducible.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

#: Kinds of pre-request fault. `slow` delays, then answers normally.
PRE_KINDS = ("500", "429", "timeout", "drop", "slow")
#: What a fail-after-write does once the write has been applied.
AFTER_WRITE_KINDS = ("500", "drop")
WRITE_METHODS = ("POST", "DELETE")

_FLOAT_FIELDS = ("p500", "p429", "ptimeout", "pdrop", "pslow", "fail_after_write")
_SETTABLE = (
    *_FLOAT_FIELDS,
    "delay_seconds",
    "hang_seconds",
    "fail_next",
    "fail_next_kind",
    "fail_after_write_next",
    "fail_after_write_kind",
    "methods",
    "path_prefix",
    "seed",
)


@dataclasses.dataclass
class FaultConfig:
    """Fault settings of one merchant. Probabilities are per matching request."""

    p500: float = 0.0
    p429: float = 0.0
    ptimeout: float = 0.0
    pdrop: float = 0.0
    pslow: float = 0.0
    delay_seconds: float = 1.0
    hang_seconds: float = 5.0
    fail_next: int = 0
    fail_next_kind: str = "500"
    fail_after_write: float = 0.0
    fail_after_write_next: int = 0
    fail_after_write_kind: str = "500"
    methods: list[str] | None = None
    path_prefix: str | None = None
    seed: int = 0
    rng: random.Random = dataclasses.field(default_factory=lambda: random.Random(0), repr=False)

    def update(self, **settings: Any) -> None:
        """Validate and apply settings; raises ValueError with a one-line message."""
        for name, value in settings.items():
            if name not in _SETTABLE:
                raise ValueError(f"unknown fault setting {name!r}; known: {', '.join(_SETTABLE)}")
            if name in _FLOAT_FIELDS:
                value = _number(name, value)
                if not 0.0 <= value <= 1.0:
                    raise ValueError(f"{name} must be a probability between 0 and 1")
            elif name in ("delay_seconds", "hang_seconds"):
                value = _number(name, value)
                if value < 0:
                    raise ValueError(f"{name} must be >= 0")
            elif name in ("fail_next", "fail_after_write_next", "seed"):
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ValueError(f"{name} must be a non-negative integer")
            elif name == "fail_next_kind" and value not in PRE_KINDS:
                raise ValueError(f"fail_next_kind must be one of {PRE_KINDS}")
            elif name == "fail_after_write_kind" and value not in AFTER_WRITE_KINDS:
                raise ValueError(f"fail_after_write_kind must be one of {AFTER_WRITE_KINDS}")
            elif name == "methods" and value is not None:
                if isinstance(value, str):
                    value = [value]
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ValueError("methods must be a list of HTTP methods or null")
                value = [v.upper() for v in value]
            elif name == "path_prefix" and value is not None:
                if not isinstance(value, str):
                    raise ValueError("path_prefix must be a string or null")
                value = "/" + value.strip("/") if value.strip("/") else "/"
            setattr(self, name, value)
        if "seed" in settings:
            self.rng = random.Random(self.seed)

    def matches(self, method: str, path: str) -> bool:
        """Does this request fall under the filter? `path` is relative to /v1.0."""
        if self.methods is not None and method not in self.methods:
            return False
        return self.path_prefix is None or path.startswith(self.path_prefix)

    def before(self, method: str, path: str) -> str | None:
        """The fault to apply before handling this request, if any."""
        if not self.matches(method, path):
            return None
        if self.fail_next > 0:
            self.fail_next -= 1
            return self.fail_next_kind
        probs = (self.p500, self.p429, self.ptimeout, self.pdrop, self.pslow)
        if not any(probs):
            return None
        draw = self.rng.random()
        for kind, p in zip(PRE_KINDS, probs, strict=True):
            if draw < p:
                return kind
            draw -= p
        return None

    def after_write(self, method: str, path: str) -> str | None:
        """After a successful write: answer 500 / drop instead of the real response?"""
        if method not in WRITE_METHODS or not self.matches(method, path):
            return None
        if self.fail_after_write_next > 0:
            self.fail_after_write_next -= 1
            return self.fail_after_write_kind
        if self.fail_after_write and self.rng.random() < self.fail_after_write:
            return self.fail_after_write_kind
        return None

    def to_dict(self) -> dict[str, Any]:
        """Settings as JSON (without the RNG)."""
        return {name: getattr(self, name) for name in _SETTABLE}


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number") from None
    return float(value)
