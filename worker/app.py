"""The procrastinate App of loyverse-sync: ``loyverse_sync.worker.app:app``.

The connector points at the database resolved like every other command (DATABASE_URL, the
libpq variables, then discovery; see loyverse_sync/config.py). ``app`` is built on first
access (which opens its ``db.Connector``), so importing this module connects to nothing;
``build_app(connector)`` makes one whose tasks use the process's ``db.Connector`` (the worker
command builds it once and closes it; ``close_connector=True`` hands it to the App instead).
"""

from __future__ import annotations

import weakref
from typing import Any

import procrastinate

from loyverse_sync import config, db
from loyverse_sync.worker import inbound_tasks, tasks

WORKER_DEFAULTS: dict[str, Any] = {"queues": [tasks.QUEUE], "delete_jobs": "successful"}
#: Our connections in a worker: one per running job (at most 64) and a few for the periodic tasks.
WORKER_POOL_MAX = 64 + 4


def build_app(
    connector: db.Connector | None = None, *, max_pool_size: int = 8, close_connector: bool = False,
) -> procrastinate.App:
    """An App with the price-sync and inbound tasks, their SQL on ``connector`` (default: one
    built here on the resolved database, closed with the App, as with ``close_connector``);
    procrastinate's own queries on a pool of ``max_pool_size`` on the same database."""
    if connector is None:
        connector, close_connector = worker_connector(config.find_database().conninfo), True
    app = procrastinate.App(
        connector=connector.procrastinate_connector(max_size=max_pool_size),
        worker_defaults=dict(WORKER_DEFAULTS),
        periodic_defaults={"max_delay": 600},
    )
    tasks.register(app, connector)
    inbound_tasks.register(app, connector, tasks.QUEUE)
    if close_connector:
        # closed with the app (at exit at the latest), never left to the GC's order
        weakref.finalize(app, connector.close)
    return app


def worker_connector(conninfo: str, *, concurrency: int = 1) -> db.Connector:
    """A worker's database handle for our own SQL: a connection per running job, ready before
    the first burst of jobs (a pool grows one connection at a time), plus one for the periodic
    tasks (procrastinate keeps its own pool for its queries and LISTEN)."""
    return db.Connector(conninfo, role="worker", min_size=concurrency + 1,
                        max_size=max(WORKER_POOL_MAX, concurrency + 4))


_app: procrastinate.App | None = None


def __getattr__(name: str) -> Any:
    # `procrastinate --app=loyverse_sync.worker.app.app` and `from ... import app` land here.
    global _app
    if name == "app":
        if _app is None:
            _app = build_app()
        return _app
    raise AttributeError(name)
