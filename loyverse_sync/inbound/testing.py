"""Test and bench helpers (not used in production): the receiver under uvicorn and a
procrastinate worker, each on its own thread and event loop, over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn

from loyverse_sync.inbound import receiver as receiver_mod


class _LoopThread:
    def __init__(self, name: str, main: Callable[[], Any]) -> None:
        self._main = main
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by the fixture
            self.error = exc


@contextlib.contextmanager
def running_receiver(conninfo: str, **kwargs: Any) -> Iterator[str]:
    """Serve the receiver on 127.0.0.1:<free port> under uvicorn; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    rec = receiver_mod.Receiver(conninfo, **kwargs)
    server = uvicorn.Server(uvicorn.Config(rec.app(), log_level="warning", lifespan="on"))

    async def main() -> None:
        await server.serve(sockets=[sock])

    runner = _LoopThread("receiver", main)
    runner.thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if runner.error is not None or not runner.thread.is_alive():
            raise RuntimeError(f"receiver did not start: {runner.error!r}")
        if time.monotonic() > deadline:
            raise RuntimeError("receiver did not start within 30 s")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        runner.thread.join(30)
        sock.close()


@contextlib.contextmanager
def running_worker(conninfo: str, *, concurrency: int = 2) -> Iterator[None]:
    """A real procrastinate worker (the app of `loyverse-sync worker`) until the block ends."""
    from loyverse_sync.worker import app as app_mod

    app = app_mod.build_app(conninfo)
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

    runner = _LoopThread("worker", main)
    runner.thread.start()
    if not ready.wait(30):
        raise RuntimeError(f"worker did not start: {runner.error!r}")
    try:
        yield
    finally:
        assert loop is not None and stop is not None
        loop.call_soon_threadsafe(stop.set)
        runner.thread.join(60)


def wait_for(condition: Callable[[], Any], *, timeout: float = 60.0, what: str = "condition") -> Any:
    """Poll ``condition`` until truthy; a failsafe timeout only (tests assert on final states)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
