"""`loyverse-sync serve`: the JSON API and the managers' console in one ASGI process."""

from __future__ import annotations

import logging

import click

from loyverse_sync import db
from loyverse_sync.cli import _common

#: The server's pool: one connection per request being served.
POOL_SIZE = 8


def connector(conninfo: str) -> db.Connector:
    """The server's one database handle (the caller closes it).

    Short queries only: JIT compiling a status query over a large queue cost 210 ms of its
    313 ms (bench/api_latency.py), so the server's connections go without it."""
    return db.Connector(conninfo, role="serve", options="-c jit=off", max_size=POOL_SIZE)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: all).")
@click.option("--port", type=_common.PORT, default=8080, show_default=True, help="Port to listen on.")
@click.option("--root-path", default="", help="URL prefix when behind a reverse proxy (e.g. /loyverse).")
@click.option("--openapi", "print_openapi", is_flag=True,
              help="Print the OpenAPI document (what docs/openapi.json holds) and exit.")
def serve(host: str, port: int, root_path: str, print_openapi: bool) -> None:
    """Serve the HTTP API (/api/integrations/loyverse/, OpenAPI document at /openapi.json)
    and the console (/console/) until SIGTERM.

    Sign in and call the API with keys from `loyverse-sync apikey create`. Set
    LOYVERSE_SYNC_SESSION_SECRET so console sessions survive a restart, and LOYVERSE_SYNC_KEY
    (the token key) so the import preview can fetch the menu.
    """
    import uvicorn

    from loyverse_sync import audit
    from loyverse_sync.web import app as app_mod

    if print_openapi:
        import json

        doc = app_mod.create_app(None).openapi()
        click.echo(json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False))
        return
    found = _common.database()
    audit.use_for_process(f"serve:{audit.os_user()}")  # requests set their own actor
    with connector(found.conninfo) as handle:
        app = app_mod.create_app(handle)
        logging.getLogger("loyverse_sync").info("serving on http://%s:%s/ (%s)", host, port, found.describe())
        click.echo(f"loyverse-sync serve: http://{host}:{port}/console/ (API: http://{host}:{port}/api/integrations/loyverse/, "
                   f"OpenAPI: /openapi.json)", err=True)
        uvicorn.run(app, host=host, port=port, root_path=root_path, log_level="warning", access_log=False,
                    proxy_headers=bool(root_path))
