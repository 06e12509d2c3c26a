"""The procrastinate App of loyverse-sync: ``loyverse_sync.worker.app:app``.

The connector points at the database resolved like every other command (DATABASE_URL, the
libpq variables, then discovery; see loyverse_sync/config.py). ``app`` is built on first
access (which opens its ``db.Connector``), so importing this module connects to nothing;
``build_app(conninfo)`` makes an App for an explicit database (tests, tools),
``build_app(connector=...)`` one whose tasks use the process's ``db.Connector`` (the worker
command builds it once and closes it).
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
    conninfo: str | None = None, *, connector: db.Connector | None = None, max_pool_size: int = 8,
) -> procrastinate.App:
    """An App with the price-sync and inbound tasks, their SQL on ``connector`` (default: one
    built here on ``conninfo``, itself defaulting to the resolved database, closed with the app)."""
    own = connector is None
    if connector is None:
        connector = db.Connector(conninfo or config.find_database().conninfo, role="worker",
                                 min_size=1, max_size=WORKER_POOL_MAX)
    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(
            conninfo=connector.conninfo, min_size=1, max_size=max_pool_size,
            kwargs={"application_name": db.application_name("procrastinate")},
        ),
        worker_defaults=dict(WORKER_DEFAULTS),
        periodic_defaults={"max_delay": 600},
    )
    tasks.register(app, connector)
    inbound_tasks.register(app, connector, tasks.QUEUE)
    if own:
        # closed with the app (at exit at the latest), never left to the GC's order
        weakref.finalize(app, connector.close)
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
