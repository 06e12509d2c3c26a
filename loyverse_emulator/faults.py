"""Per-merchant fault injection for the Loyverse emulator.

A `FaultConfig` decides, for each authenticated request that matches its method/path
filter, whether to answer 500 or 429, hang then close (`timeout`), close the socket
without a response (`drop`), or answer late (`slow`). "Fail after write" applies a POST or
DELETE first and then answers 500 or drops the connection, which is what makes retries of
non-idempotent creates dangerous. `mangle` rules rewrite the body (or status) of matching
successful responses: edit fields of one object, drop or duplicate it, or send garbage.
Draws come from a seeded RNG so a run is reproducible.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import random
import re
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
    "mangle",
)
#: Edits a mangle rule can make (see `Mangle`).
MANGLE_OPS = ("set", "remove", "replace", "drop", "duplicate")
_MANGLE_KEYS = ("methods", "path", "target", "ops", "body", "truncate", "status",
                "content_type", "count")


@dataclasses.dataclass
class Mangle:
    """Rewrites matching 2xx responses: the response filter is `methods` and `path` (a regex
    searched in the path relative to /v1.0); with `target` (an object id) only responses that
    hold that object (the body itself, or an element of a top-level array, matched on `id` or
    `variant_id`) are rewritten, and `ops` apply to that object, else to the whole body.

    ops: `{"op": "set", "path": "/variants/*/stores/0/price", "value": "abc"}` (JSON-pointer
    path, `*` = every element; a missing key is created, a missing parent skips the edit),
    `{"op": "remove", "path": "/id"}`, `{"op": "replace", "value": ...}` (the target itself),
    `{"op": "drop"}` / `{"op": "duplicate"}` (remove the target from its array / insert a
    copy after it; `"edits": [set/remove ops]` change the copy only). Then `body` (a raw string) replaces the serialized body, `truncate` keeps
    its first N bytes, `status` and `content_type` replace the status and the header.
    `count` is how many responses to rewrite (null: all). Every matching rule applies.
    """

    methods: list[str] | None = None
    path: str = ""
    target: str | None = None
    ops: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    body: str | None = None
    truncate: int | None = None
    status: int | None = None
    content_type: str | None = None
    count: int | None = None
    applied: int = 0

    @classmethod
    def parse(cls, doc: Any) -> Mangle:
        """A rule from its JSON form; raises ValueError with a one-line message."""
        if not isinstance(doc, dict):
            raise ValueError("each mangle rule must be an object")
        unknown = set(doc) - set(_MANGLE_KEYS)
        if unknown:
            raise ValueError(f"unknown mangle key {sorted(unknown)[0]!r}; known: {', '.join(_MANGLE_KEYS)}")
        rule = cls()
        methods = doc.get("methods")
        if isinstance(methods, str):
            methods = [methods]
        if methods is not None and (
            not isinstance(methods, list) or not all(isinstance(m, str) for m in methods)
        ):
            raise ValueError("mangle methods must be a list of HTTP methods or null")
        rule.methods = [m.upper() for m in methods] if methods is not None else None
        path = doc.get("path", "")
        if not isinstance(path, str):
            raise ValueError("mangle path must be a regular expression")
        try:
            re.compile(path)
        except re.error as exc:
            raise ValueError(f"mangle path is not a valid regular expression: {exc}") from None
        rule.path = path
        target = doc.get("target")
        if target is not None and not isinstance(target, str):
            raise ValueError("mangle target must be an object id or null")
        rule.target = target
        ops = doc.get("ops") or []
        if not isinstance(ops, list):
            raise ValueError("mangle ops must be a list")
        for op in ops:
            if not isinstance(op, dict) or op.get("op") not in MANGLE_OPS:
                raise ValueError(f"each mangle op needs \"op\" in {MANGLE_OPS}")
            if op["op"] in ("set", "remove") and not isinstance(op.get("path"), str):
                raise ValueError(f"mangle op {op['op']!r} needs a \"path\"")
            if op["op"] in ("set", "replace") and "value" not in op:
                raise ValueError(f"mangle op {op['op']!r} needs a \"value\"")
            if op["op"] in ("drop", "duplicate") and target is None:
                raise ValueError(f"mangle op {op['op']!r} needs a target")
            edits = op.get("edits") or []
            if not isinstance(edits, list) or not all(
                isinstance(e, dict) and e.get("op") in ("set", "remove") and isinstance(e.get("path"), str)
                and (e["op"] == "remove" or "value" in e) for e in edits
            ):
                raise ValueError("duplicate edits must be a list of set/remove ops with a path")
        rule.ops = [dict(op) for op in ops]
        if doc.get("body") is not None and not isinstance(doc["body"], str):
            raise ValueError("mangle body must be a string or null")
        rule.body = doc.get("body")
        for key in ("truncate", "count"):
            value = doc.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"mangle {key} must be a non-negative integer or null")
            setattr(rule, key, value)
        status = doc.get("status")
        if status is not None and (isinstance(status, bool) or not isinstance(status, int)
                                   or not 100 <= status <= 599):
            raise ValueError("mangle status must be an HTTP status or null")
        rule.status = status
        content_type = doc.get("content_type")
        if content_type is not None and not isinstance(content_type, str):
            raise ValueError("mangle content_type must be a string or null")
        rule.content_type = content_type
        return rule

    def to_dict(self) -> dict[str, Any]:
        out = {key: copy.deepcopy(getattr(self, key)) for key in _MANGLE_KEYS}
        out["applied"] = self.applied
        return out

    def matches(self, method: str, path: str) -> bool:
        if self.count is not None and self.applied >= self.count:
            return False
        if self.methods is not None and method not in self.methods:
            return False
        return re.search(self.path, path) is not None

    def apply(self, result: Any) -> tuple[bool, Any]:
        """(applied, new result); not applied when the target is absent."""
        result = copy.deepcopy(result)
        if self.target is None:
            for op in self.ops:
                result = _edit_root(result, op)
            return True, result
        holders = _find_target(result, self.target)
        if not holders:
            return False, result
        for op in self.ops:
            # re-find: an earlier op may have moved, replaced or copied the target
            for container, key in _find_target(result, self.target):
                if container is None:
                    result = _edit_root(result, op)
                    break
                if op["op"] == "drop":
                    container[key] = _DROPPED
                elif op["op"] == "duplicate":
                    twin = copy.deepcopy(container[key])
                    for edit in op.get("edits") or []:
                        _edit_path(twin, edit)
                    container.insert(key + 1, twin)
                    break
                elif op["op"] == "replace":
                    container[key] = copy.deepcopy(op["value"])
                else:
                    _edit_path(container[key], op)
            result = _without_dropped(result)
        return True, result


_DROPPED = object()


def _find_target(result: Any, target: str) -> list[tuple[Any, Any]]:
    """Where the object with this id sits: [(None, None)] for the body, else (list, index)s."""
    def is_target(obj: Any) -> bool:
        return isinstance(obj, dict) and target in (obj.get("id"), obj.get("variant_id"))

    if is_target(result):
        return [(None, None)]
    found = []
    if isinstance(result, dict):
        for value in result.values():
            if isinstance(value, list):
                found += [(value, i) for i, obj in enumerate(value) if is_target(obj)]
    return found


def _without_dropped(result: Any) -> Any:
    if isinstance(result, dict):
        for key, value in result.items():
            if isinstance(value, list):
                result[key] = [v for v in value if v is not _DROPPED]
    return result


def _edit_root(result: Any, op: dict[str, Any]) -> Any:
    if op["op"] == "replace":
        return copy.deepcopy(op["value"])
    if op["op"] in ("set", "remove"):
        if op["path"] in ("", "/"):
            return copy.deepcopy(op.get("value")) if op["op"] == "set" else None
        _edit_path(result, op)
    return result


def _edit_path(obj: Any, op: dict[str, Any]) -> None:
    parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].strip("/").split("/")]
    if parts == [""]:
        return
    parents = [obj]
    for part in parts[:-1]:
        parents = [child for parent in parents for child in _children(parent, part)]
    last = parts[-1]
    for parent in parents:
        if isinstance(parent, dict):
            keys = list(parent) if last == "*" else [last]
        elif isinstance(parent, list):
            keys = list(range(len(parent))) if last == "*" else (
                [int(last)] if last.lstrip("-").isdigit() and -len(parent) <= int(last) < len(parent) else [])
        else:
            continue
        if op["op"] == "set":
            for key in keys:
                parent[key] = copy.deepcopy(op["value"])
        else:
            for key in sorted(keys, reverse=True) if isinstance(parent, list) else keys:
                if isinstance(parent, list) or key in parent:
                    del parent[key]


def _children(parent: Any, part: str) -> list[Any]:
    if isinstance(parent, dict):
        if part == "*":
            return list(parent.values())
        return [parent[part]] if part in parent else []
    if isinstance(parent, list):
        if part == "*":
            return list(parent)
        if part.lstrip("-").isdigit() and -len(parent) <= int(part) < len(parent):
            return [parent[int(part)]]
    return []


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
    mangle: list[Mangle] = dataclasses.field(default_factory=list)
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
            elif name == "mangle":
                if value is None:
                    value = []
                if isinstance(value, dict):
                    value = [value]
                if not isinstance(value, list):
                    raise ValueError("mangle must be a list of rules, a rule, or null")
                value = [Mangle.parse(rule) for rule in value]
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

    def rewrite(
        self, method: str, path: str, status: int, result: Any
    ) -> tuple[int, bytes, str | None] | None:
        """A mangled (status, body, content type) for this 2xx response, or None.

        Every matching rule whose target is in the response applies (and counts), in order:
        edits see the previous rules' edits; a raw `body`/`truncate`/`status` of a later rule
        wins over an earlier one."""
        if not 200 <= status < 300:
            return None
        applied_any = False
        payload: bytes | None = None
        truncate: int | None = None
        content_type: str | None = None
        for rule in self.mangle:
            if not rule.matches(method, path):
                continue
            applied, new = rule.apply(result)
            if not applied:
                continue
            rule.applied += 1
            applied_any = True
            result = new
            if rule.body is not None:
                payload = rule.body.encode()
            if rule.truncate is not None:
                truncate = rule.truncate
            status = rule.status or status
            content_type = rule.content_type or content_type
        if not applied_any:
            return None
        if payload is None:
            payload = json.dumps(result, ensure_ascii=False, separators=(",", ":"), default=str).encode()
        if truncate is not None:
            payload = payload[:truncate]
        return status, payload, content_type

    def to_dict(self) -> dict[str, Any]:
        """Settings as JSON (without the RNG)."""
        out = {name: getattr(self, name) for name in _SETTABLE}
        out["mangle"] = [rule.to_dict() for rule in self.mangle]
        return out


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number") from None
    return float(value)
