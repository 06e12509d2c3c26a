"""The `loyverse-sync` command: one click group whose subcommands load on first use."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Any

import click

from loyverse_sync.cli import _common

# name -> (module under loyverse_sync.cli, attribute). Loaded lazily: `loyverse-sync db status`
# does not import the emulator or procrastinate.
COMMANDS: dict[str, tuple[str, str]] = {
    "db": ("db", "db"),
    "account": ("account", "account"),
    "restaurant": ("restaurant", "restaurant"),
    "emulator": ("emulator", "emulator"),
    "import": ("import_", "import_group"),
    "sync": ("sync", "sync"),
    "worker": ("worker", "worker"),
    "demo": ("demo", "demo"),
    "dashboard": ("dashboard", "dashboard"),
    "metrics": ("ops", "metrics"),
    "health": ("ops", "health"),
    "serve": ("serve", "serve"), "apikey": ("apikey", "apikey"),
}


class LazyGroup(click.Group):
    """A group whose commands are imported when used (or when --help lists them)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target
        try:
            module = importlib.import_module(f"loyverse_sync.cli.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"loyverse_sync.cli.{module_name}":
                return None  # not built in this version
            raise
        command = getattr(module, attr, None)
        return command if isinstance(command, click.Command) else None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except _common.EXPECTED_ERRORS as exc:
            raise _common.usage_error(exc) from None


@click.group(cls=LazyGroup)
@click.version_option(package_name="loyverse-sync")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def cli(verbose: int) -> None:
    """Menu import from and price sync to the Loyverse POS, database-first.

    The database comes from DATABASE_URL or the PG* variables; with neither, a local
    PostgreSQL server, else the embedded one (see README).
    """
    level = logging.WARNING - 10 * verbose
    fmt = os.environ.get("LOYVERSE_SYNC_LOG_FORMAT", "text")
    _common.configure_logging(level, json_format=fmt == "json")
    # the audit trail's "who" (loyverse.actor): the OS user; the worker and server set their own
    if "LOYVERSE_SYNC_ACTOR" in os.environ or "loyverse.actor=" not in os.environ.get("PGOPTIONS", ""):
        from loyverse_sync import audit

        audit.use_for_process(os.environ.get("LOYVERSE_SYNC_ACTOR") or f"cli:{audit.os_user()}")


def main() -> None:
    """Entry point of the console script."""
    sys.exit(cli.main(prog_name="loyverse-sync"))
