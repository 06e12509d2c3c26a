"""Webhook delivery for the emulator: POSTs payloads from a background thread.

Payloads are `{"merchant_id","type","created_at",<array>}`. A subscription created with an
OAuth app token is signed: `X-Loyverse-Signature` is the lowercase hex HMAC-SHA1 of the raw
body keyed by that app's client secret (API.md §8). Subscriptions made with a personal token
are unsigned. Delivery never blocks the API response.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import threading
import time
from typing import Any

import httpx

from loyverse_emulator import state as st

SIGNATURE_HEADER = "X-Loyverse-Signature"
API_VERSION_HEADER = "X-Loyverse-API-Version"
MAX_OBJECTS = 100  # Loyverse batches up to 100 objects per delivery (API.md section 8)
FAULTS = ("duplicate", "drop", "reorder")


def sign(body: bytes, client_secret: str) -> str:
    """The signature Loyverse puts in X-Loyverse-Signature (lowercase hex HMAC-SHA1)."""
    return hmac.new(client_secret.encode("utf-8"), body, hashlib.sha1).hexdigest()


class Dispatcher:
    """One background thread delivering webhooks in order; attempts are logged in the state."""

    def __init__(self, state: st.State, *, attempts: int = 3, timeout: float = 5.0) -> None:
        self._state = state
        self._attempts = attempts
        self._timeout = timeout
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        # Delivery faults, each a count of upcoming deliveries it applies to: duplicate (sent
        # twice), drop (never sent), reorder (held back and sent after the next delivery).
        self.faults: dict[str, int] = dict.fromkeys(FAULTS, 0)
        self._held: tuple[str, bytes, str | None, str, str] | None = None

    def set_faults(self, **counts: int) -> dict[str, int]:
        """Add upcoming delivery faults, e.g. set_faults(duplicate=2, reorder=1); returns them."""
        with self._lock:
            for key, value in counts.items():
                if key not in FAULTS or isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ValueError(f"webhook fault {key!r}={value!r}: known faults are {', '.join(FAULTS)} "
                                     "(a count >= 0)")
                self.faults[key] = value
            return dict(self.faults)

    def flush_held(self) -> bool:
        """Send a delivery held back by the reorder fault now; true when there was one."""
        with self._lock:
            held, self._held = self._held, None
        if held is not None:
            self._ensure_thread()
            self._queue.put(held)
        return held is not None

    def emit(
        self, merchant: st.Merchant, hook_type: str, arrays: dict[str, Any], now_ms: int
    ) -> int:
        """Queue one delivery per ENABLED subscription of this type; call with the state lock held."""
        subs = [
            rec
            for rec in merchant.collections["webhooks"].values()
            if not rec.deleted and rec.data["type"] == hook_type and rec.data["status"] == "ENABLED"
        ]
        if not subs:
            return 0
        payload = {
            "merchant_id": merchant.id,
            "type": hook_type,
            "created_at": st.iso_from_ms(now_ms),
            **arrays,
        }
        # one delivery per 100 objects of the array, as Loyverse batches them
        bodies = []
        for key, values in arrays.items():
            if isinstance(values, list) and len(values) > MAX_OBJECTS:
                for start in range(0, len(values), MAX_OBJECTS):
                    chunk = {**payload, key: values[start:start + MAX_OBJECTS]}
                    bodies.append(json.dumps(chunk, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
                break
        else:
            bodies.append(json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
        self._ensure_thread()
        for body in bodies:
            for rec in subs:
                self._enqueue((rec.data["url"], body, rec.extra.get("client_secret"), rec.data["id"], merchant.id))
        return len(subs) * len(bodies)

    def _enqueue(self, job: tuple[str, bytes, str | None, str, str]) -> None:
        with self._lock:
            if self.faults["drop"] > 0:
                self.faults["drop"] -= 1
                return
            copies = 1
            if self.faults["duplicate"] > 0:
                self.faults["duplicate"] -= 1
                copies = 2
            if self.faults["reorder"] > 0 and self._held is None:
                self.faults["reorder"] -= 1
                self._held = job
                return
            held, self._held = self._held, None
        for _ in range(copies):
            self._queue.put(job)
        if held is not None:
            self._queue.put(held)  # the held-back delivery arrives after a newer one

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="emulator-webhooks", daemon=True
                )
                self._thread.start()

    def retry_delay(self, attempt: int) -> float:
        """Seconds before retry number ``attempt`` (1, 2, ...): Loyverse retries about 200 times
        over about 48 h, so the delay doubles from 1 s up to 15 min; divided by the emulator's
        time scale."""
        return min(900.0, 2.0 ** (attempt - 1)) / self._state.time_scale

    def _run(self) -> None:
        # A failed delivery waits for its retry in a heap without blocking the next ones (each
        # subscription's deliveries are otherwise sent in emission order).
        import heapq

        retries: list[tuple[float, int, tuple[str, bytes, str | None, str, str], int]] = []
        seq = 0
        with httpx.Client(timeout=self._timeout, follow_redirects=False) as client:
            while True:
                timeout = max(0.0, retries[0][0] - time.monotonic()) if retries else None
                try:
                    item = self._queue.get(timeout=timeout)
                except queue.Empty:  # a retry is due
                    _due, _seq, job, attempt = heapq.heappop(retries)
                else:
                    if item is None:
                        return  # close(): what was queued before is sent; pending retries are dropped
                    job, attempt = item, 1
                url, body, secret, hook_id, merchant_id = job
                headers = {"Content-Type": "application/json", API_VERSION_HEADER: "1.0"}
                if secret is not None:
                    headers[SIGNATURE_HEADER] = sign(body, secret)
                status: int | None = None
                error: str | None = None
                try:
                    status = client.post(url, content=body, headers=headers).status_code
                except httpx.HTTPError as exc:
                    status, error = None, f"{type(exc).__name__}: {exc}"
                ok = status is not None and 200 <= status < 300
                if not ok and attempt < self._attempts:
                    seq += 1
                    heapq.heappush(retries, (time.monotonic() + self.retry_delay(attempt), seq, job, attempt + 1))
                    continue
                with self._state.lock:
                    self._state.webhook_deliveries.append(
                        {
                            "time": st.iso_from_ms(time.time_ns() // 1_000_000),
                            "merchant_id": merchant_id,
                            "webhook_id": hook_id,
                            "url": url,
                            "signed": secret is not None,
                            "status": status,
                            "error": error,
                            "attempts": attempt,
                            "body": body.decode("utf-8"),
                        }
                    )

    def close(self, timeout: float = 5.0) -> None:
        """Finish queued deliveries (up to `timeout`; retries not yet due are dropped) and stop the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)
