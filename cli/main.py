"""The `loyverse-sync` command."""

from __future__ import annotations

import click


@click.group()
@click.version_option(package_name="loyverse-sync")
def cli() -> None:
    """Menu import from and price sync to the Loyverse POS."""


def main() -> None:
    cli()
