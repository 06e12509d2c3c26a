"""The procrastinate App of loyverse-sync: ``loyverse_sync.worker.app:app``.

The connector points at the database resolved like every other command (DATABASE_URL, the
libpq variables, then discovery; see loyverse_sync/config.py). ``app`` is built on first
access, so importing this module connects to nothing; ``build_app(conninfo)`` makes an App
for an explicit database (tests, tools).
"""

from __future__ import annotations

from typing import Any

import procrastinate

from loyverse_sync import config
from loyverse_sync.worker import inbound_tasks, tasks

WORKER_DEFAULTS: dict[str, Any] = {"queues": [tasks.QUEUE], "delete_jobs": "successful"}


def build_app(conninfo: str | None = None, *, max_pool_size: int = 8) -> procrastinate.App:
    """An App on ``conninfo`` (default: the resolved database) with the price-sync tasks."""
    if conninfo is None:
        conninfo = config.find_database().conninfo
    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(conninfo=conninfo, min_size=1, max_size=max_pool_size),
        worker_defaults=dict(WORKER_DEFAULTS),
        periodic_defaults={"max_delay": 600},
    )
    tasks.register(app, conninfo)
    inbound_tasks.register(app, conninfo, tasks.QUEUE)
    return app


_app: procrastinate.App | None = None


def __getattr__(name: str) -> Any:
    # `procrastinate --app=loyverse_sync.worker.app.app` and `from ... import app` land here.
    global _app
    if name == "app":
        if _app is None:
            _app = build_app()
        return _app
    raise AttributeError(name)
