"""Test helpers for inbound: a procrastinate worker on its own thread and event loop.

The receiver under uvicorn and `wait_for` are shared with bench/webhook_latency.py, so they
live in bench/rig.py and are re-exported here."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

from bench.rig import LoopThread, running_receiver, wait_for

__all__ = ["running_receiver", "running_worker", "wait_for"]


@contextlib.contextmanager
def running_worker(conninfo: str, *, concurrency: int = 2) -> Iterator[None]:
    """A real procrastinate worker (the app of `loyverse-sync worker`) until the block ends."""
    from loyverse_sync.worker import app as app_mod

    app = app_mod.build_app(app_mod.worker_connector(conninfo, concurrency=concurrency), close_connector=True)
    stop: asyncio.Event | None = None
    loop: asyncio.AbstractEventLoop | None = None
    ready = threading.Event()

    async def main() -> None:
        nonlocal stop, loop
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        async with app.open_async():
            worker = asyncio.create_task(app.run_worker_async(
                install_signal_handlers=False, queues=["price_sync"], delete_jobs="successful",
                concurrency=concurrency))
            ready.set()
            await stop.wait()
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker

    runner = LoopThread("worker", main)
    runner.thread.start()
    if not ready.wait(30):
        raise RuntimeError(f"worker did not start: {runner.error!r}")
    try:
        yield
    finally:
        assert loop is not None and stop is not None
        loop.call_soon_threadsafe(stop.set)
        runner.thread.join(60)

