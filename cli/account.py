"""`loyverse-sync account ...`: add, list, rotate-key."""

from __future__ import annotations

import os
import pathlib
import sys

import click
import psycopg

from loyverse_sync import accounts, crypto
from loyverse_sync.cli import _common


@click.group("account")
def account() -> None:
    """Loyverse merchant accounts and their (encrypted) tokens."""


def _read_token(token_env: str | None) -> str:
    if token_env:
        value = os.environ.get(token_env)
        if not value:
            raise click.BadParameter(
                f"the environment variable {token_env} is not set or empty",
                param_hint="--token-env",
            )
        return value.strip()
    if sys.stdin.isatty():
        value = click.prompt("Loyverse access token", hide_input=True)
    else:
        value = sys.stdin.readline()
    if not value.strip():
        raise click.BadParameter("no token on standard input", param_hint="--token-env")
    return value.strip()


@account.command("add")
@click.option("--name", required=True, help="A name for the account (unique).")
@click.option(
    "--token-env",
    metavar="VAR",
    help="Read the token from this environment variable (else standard input).",
)
@click.option(
    "--base-url",
    default="https://api.loyverse.com/v1.0",
    show_default=True,
    help="Loyverse API base URL (the emulator's for tests).",
)
@click.option("--no-check", is_flag=True, help="Do not check the token with GET /merchant/.")
@click.option(
    "--rate-limit",
    type=click.IntRange(min=1),
    default=300,
    show_default=True,
    help="Requests per window (the account's budget).",
)
@click.option(
    "--rate-window",
    type=click.FloatRange(min=0.001),
    default=300.0,
    show_default=True,
    help="Window in seconds.",
)
def add(
    name: str,
    token_env: str | None,
    base_url: str,
    no_check: bool,
    rate_limit: int,
    rate_window: float,
) -> None:
    """Register a Loyverse account. The token never goes on the command line."""
    token = _read_token(token_env)
    merchant: dict[str, object] | None = None
    if not no_check:
        from loyverse_sync.loyverse import client as lv_client
        from loyverse_sync.loyverse import errors as lv_errors

        try:
            with lv_client.LoyverseClient(base_url, token, max_attempts=2) as lv:
                merchant = lv.get_merchant()
        except lv_errors.Unauthorized:
            raise _common.UsageProblem(
                f"Loyverse at {base_url} rejected the token (401 UNAUTHORIZED)"
            ) from None
        except lv_errors.LoyverseError as exc:
            raise _common.UsageProblem(f"cannot check the token at {base_url}: {exc}") from None
    keyfile_existed = crypto.key_file().exists() or bool(os.environ.get("LOYVERSE_SYNC_KEY"))
    keys = crypto.load_keys(create=True)
    if not keyfile_existed:
        click.echo(
            f"created a new encryption key in {crypto.key_file()} (keep it safe and backed up)",
            err=True,
        )
    with _common.connection() as conn:
        try:
            account_id = accounts.add_account(
                conn,
                name=name,
                token=token,
                base_url=base_url,
                keys=keys,
                rate_limit_requests=rate_limit,
                rate_limit_window_seconds=rate_window,
            )
        except psycopg.errors.UniqueViolation:
            raise _common.UsageProblem(f"an account named {name!r} already exists") from None
        except psycopg.errors.CheckViolation as exc:
            raise _common.UsageProblem(f"invalid account: {exc.diag.constraint_name}") from None
        if merchant is not None:
            accounts.update_merchant(conn, account_id, merchant)
    what = (
        f" ({merchant.get('business_name')}, {(merchant.get('currency') or {}).get('code')})"
        if isinstance(merchant, dict)
        else ""
    )
    click.echo(f"account {name!r} added with id {account_id}{what}")


@account.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_(as_json: bool) -> None:
    """List accounts (never their tokens)."""
    with _common.connection() as conn:
        rows = accounts.list_accounts(conn)
    if as_json:
        _common.echo_json(rows)
        return
    _common.echo_table(
        rows,
        [
            "account_id",
            "name",
            "business_name",
            "currency_code",
            "base_url",
            "token_valid",
            "restaurants",
        ],
        empty="no accounts yet: `loyverse-sync account add --name ... --token-env VAR`",
    )


@account.command("rotate-key")
@click.option(
    "--new-key-file",
    type=click.Path(dir_okay=False, path_type=pathlib.Path),
    help="Where to write the new key (required when the key comes from LOYVERSE_SYNC_KEY).",
)
@click.option("--drop-old", is_flag=True, help="Keep only the new key in the key file afterwards.")
def rotate_key(new_key_file: pathlib.Path | None, drop_old: bool) -> None:
    """Re-encrypt every token with a new key, in one transaction."""
    old_keys = crypto.load_keys()
    new_key = crypto.new_key()
    from_env = bool(os.environ.get("LOYVERSE_SYNC_KEY"))
    if from_env and new_key_file is None:
        raise click.BadParameter(
            "the key comes from LOYVERSE_SYNC_KEY: say where to write the new one",
            param_hint="--new-key-file",
        )
    target = new_key_file or crypto.key_file()
    # The new key goes on disk first (with the old ones after it), so a crash between
    # here and the commit below leaves keys that decrypt every ciphertext.
    accounts.write_key_file(target, [new_key, *([] if from_env and new_key_file else old_keys)])
    with _common.connection() as conn:
        count = accounts.rotate_key(conn, old_keys=old_keys, new_key=new_key)
    if drop_old:
        accounts.write_key_file(target, [new_key])
    click.echo(
        f"re-encrypted {count} token(s) with key {crypto.fingerprint(new_key)}, written to {target}"
    )
    if from_env:
        click.echo(f"now set LOYVERSE_SYNC_KEY to the key in {target}")


# Webhooks (cli/inbound.py): subscribe, unsubscribe, list.
from loyverse_sync.cli import inbound as _inbound  # noqa: E402

account.add_command(_inbound.subscribe)
account.add_command(_inbound.unsubscribe)
account.add_command(_inbound.webhooks)
account.add_command(_inbound.polling)
