"""`loyverse-sync account ...`: add, list, rotate-key."""

from __future__ import annotations

import os
import pathlib
import sys
from typing import Any

import click
import psycopg

from loyverse_sync import accounts, crypto, key_rotation, limits
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
@click.option("--name", type=_common.Name(), required=True, help="A name for the account (unique).")
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
    "--oauth",
    is_flag=True,
    help="An account connected through an OAuth app: needs --client-id, the client secret and "
    "a refresh token (from --client-secret-env / --refresh-token-env, else standard input, one "
    "per line); --token-env then optionally gives the current access token.",
)
@click.option("--client-id", metavar="ID", help="The OAuth app's client id (with --oauth).")
@click.option(
    "--client-secret-env", metavar="VAR", help="Read the OAuth client secret from this variable."
)
@click.option(
    "--refresh-token-env", metavar="VAR", help="Read the OAuth refresh token from this variable."
)
@click.option(
    "--token-url",
    metavar="URL",
    help="The OAuth token endpoint (default: /oauth/token beside --base-url).",
)
@click.option(
    "--rate-limit",
    type=_common.IntBetween(limits.RATE_LIMIT_REQUESTS_MIN, limits.RATE_LIMIT_REQUESTS_MAX),
    default=300,
    show_default=True,
    help="Requests per window (the account's budget).",
)
@click.option(
    "--rate-window",
    type=_common.FloatBetween(limits.RATE_WINDOW_SECONDS_MIN, limits.RATE_WINDOW_SECONDS_MAX),
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
    oauth: bool = False,
    client_id: str | None = None,
    client_secret_env: str | None = None,
    refresh_token_env: str | None = None,
    token_url: str | None = None,
) -> None:
    """Register a Loyverse account: a personal access token, or (--oauth) an OAuth app's
    tokens. Tokens and secrets never go on the command line."""
    if oauth:
        _add_oauth(
            name,
            client_id,
            client_secret_env,
            refresh_token_env,
            token_env,
            token_url,
            base_url,
            no_check,
            rate_limit,
            rate_window,
        )
        return
    for flag, value in (
        ("--client-id", client_id),
        ("--client-secret-env", client_secret_env),
        ("--refresh-token-env", refresh_token_env),
        ("--token-url", token_url),
    ):
        if value is not None:
            raise click.BadParameter("is only for OAuth accounts: add --oauth", param_hint=flag)
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


def _read_secret(env: str | None, what: str, flag: str) -> str:
    """An OAuth secret from an environment variable, else the next line of standard input."""
    if env:
        value = os.environ.get(env)
        if not value or not value.strip():
            raise click.BadParameter(
                f"the environment variable {env} is not set or empty", param_hint=flag
            )
        return value.strip()
    value = click.prompt(what, hide_input=True) if sys.stdin.isatty() else sys.stdin.readline()
    if not value.strip():
        raise click.BadParameter(
            f"no {what.lower()} on standard input (or set {flag})", param_hint=flag
        )
    return value.strip()


def _add_oauth(
    name: str,
    client_id: str | None,
    client_secret_env: str | None,
    refresh_token_env: str | None,
    token_env: str | None,
    token_url: str | None,
    base_url: str,
    no_check: bool,
    rate_limit: int,
    rate_window: float,
) -> None:
    """`account add --oauth`: store first (so a refresh made by the check lands in the row,
    under its lock), then check with GET /merchant/, which refreshes if need be."""
    from loyverse_sync import oauth
    from loyverse_sync.loyverse import errors as lv_errors

    if not client_id or not client_id.strip():
        raise click.BadParameter(
            "the OAuth app's client id is required with --oauth", param_hint="--client-id"
        )
    if token_url is not None and not token_url.startswith(("https://", "http://")):
        raise click.BadParameter(f"{token_url!r} is not an http(s) URL", param_hint="--token-url")
    client_secret = _read_secret(client_secret_env, "OAuth client secret", "--client-secret-env")
    refresh_token = _read_secret(refresh_token_env, "OAuth refresh token", "--refresh-token-env")
    access_token = None
    if token_env:
        access_token = os.environ.get(token_env, "").strip()
        if not access_token:
            raise click.BadParameter(
                f"the environment variable {token_env} is not set or empty",
                param_hint="--token-env",
            )
    keys = crypto.load_keys(create=True)
    with _common.connection() as conn:
        try:
            account_id = oauth.add_oauth_account(
                conn,
                name=name,
                client_id=client_id,
                client_secret=client_secret,
                refresh_token=refresh_token,
                access_token=access_token,
                base_url=base_url,
                token_url=token_url,
                rate_limit_requests=rate_limit,
                rate_limit_window_seconds=rate_window,
                keys=keys,
            )
        except psycopg.errors.UniqueViolation:
            raise _common.UsageProblem(f"an account named {name!r} already exists") from None
        except psycopg.errors.CheckViolation as exc:
            raise _common.UsageProblem(f"invalid account: {exc.diag.constraint_name}") from None
        merchant: dict[str, Any] | None = None
        if not no_check:
            account_obj = accounts.get_account(conn, account_id, keys=keys)
            try:
                with oauth.client_for(account_obj, _common.connector(), connection=conn, max_attempts=2) as lv:
                    merchant = lv.get_merchant()
            except lv_errors.LoyverseError as exc:
                refreshed = conn.execute(
                    "select token_refreshes from loyverse.loyverse_accounts where id = %s", (account_id,)
                ).fetchone()
                if refreshed and refreshed["token_refreshes"] > 0:
                    # the refresh token given was spent: the stored successor is the only one left
                    raise _common.UsageProblem(
                        f"account {name!r} was added (id {account_id}) and its tokens refreshed, "
                        f"but the check failed: {exc}"
                    ) from None
                accounts.delete_account(conn, account_id)
                if isinstance(exc, oauth.RefreshRejected):
                    raise _common.UsageProblem(
                        "Loyverse refused the refresh token or the client id/secret "
                        f"({exc.details}); nothing was stored"
                    ) from None
                raise _common.UsageProblem(
                    f"cannot check the account at {base_url}: {exc}; nothing was stored"
                ) from None
            accounts.update_merchant(conn, account_id, merchant)
        expiry = conn.execute(
            "select token_expires_at from loyverse.loyverse_accounts where id = %s", (account_id,)
        ).fetchone()
    what = ""
    if merchant is not None:
        currency = merchant.get("currency")
        what = f"{merchant.get('business_name')}, {currency.get('code') if isinstance(currency, dict) else '?'}; "
    expires = expiry["token_expires_at"] if expiry else None
    click.echo(
        f"account {name!r} added with id {account_id} (OAuth; {what}access token expires "
        f"{_common._cell(expires) if expires else 'unknown: refreshed on first use'})"
    )


@account.command("reconnect")
@click.argument("account_ref", metavar="ACCOUNT")
@click.option("--client-id", metavar="ID", required=True, help="The OAuth app's client id.")
@click.option(
    "--client-secret-env", metavar="VAR", help="Read the client secret from this variable."
)
@click.option(
    "--refresh-token-env", metavar="VAR", help="Read the refresh token from this variable."
)
@click.option(
    "--token-env",
    metavar="VAR",
    help="Read the current access token from this variable (optional).",
)
@click.option(
    "--token-url", metavar="URL", help="The OAuth token endpoint (default: beside the base URL)."
)
@click.option("--no-check", is_flag=True, help="Do not check the tokens with GET /merchant/.")
def reconnect(
    account_ref: str,
    client_id: str,
    client_secret_env: str | None,
    refresh_token_env: str | None,
    token_env: str | None,
    token_url: str | None,
    no_check: bool,
) -> None:
    """Connect ACCOUNT (id or name) through an OAuth app with new tokens: after Loyverse
    refused its refresh token, or to switch a personal-token account over. Its restaurants,
    queue and history stay. Secrets are read as for `account add --oauth`."""
    from loyverse_sync import oauth
    from loyverse_sync.loyverse import errors as lv_errors

    if not client_id.strip():
        raise click.BadParameter("the OAuth app's client id is empty", param_hint="--client-id")
    if token_url is not None and not token_url.startswith(("https://", "http://")):
        raise click.BadParameter(f"{token_url!r} is not an http(s) URL", param_hint="--token-url")
    client_secret = _read_secret(client_secret_env, "OAuth client secret", "--client-secret-env")
    refresh_token = _read_secret(refresh_token_env, "OAuth refresh token", "--refresh-token-env")
    access_token = _read_secret(token_env, "access token", "--token-env") if token_env else None
    keys = crypto.load_keys(create=True)
    with _common.connection() as conn:
        account_id = accounts.resolve_account_id(conn, account_ref)
        try:
            oauth.connect_account(
                conn,
                account_id,
                client_id=client_id,
                client_secret=client_secret,
                refresh_token=refresh_token,
                access_token=access_token,
                token_url=token_url,
                keys=keys,
            )
        except psycopg.errors.CheckViolation as exc:
            raise _common.UsageProblem(f"invalid account: {exc.diag.constraint_name}") from None
        if not no_check:
            try:
                with oauth.client_for(
                    accounts.get_account(conn, account_id, keys=keys),
                    _common.connector(),
                    connection=conn,
                    max_attempts=2,
                ) as lv:
                    accounts.update_merchant(conn, account_id, lv.get_merchant())
            except lv_errors.LoyverseError as exc:
                raise _common.UsageProblem(
                    f"account {account_ref!r} was reconnected, but the check failed: {exc}"
                ) from None
    click.echo(
        f"account {account_ref!r} (id {account_id}) connected through OAuth app {client_id.strip()}"
    )


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
            "auth_kind",
            "token_valid",
            "token_expires_at",
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
    """Re-encrypt every token and secret with a new key, in one transaction.

    Tokens, an OAuth account's client secret and refresh token, and the webhook signing
    secrets (`account subscribe --client-secret-env`) are all re-encrypted."""
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
    key_rotation.write_key_file(target, [new_key, *([] if from_env and new_key_file else old_keys)])
    with _common.connection() as conn:
        done = key_rotation.rotate_all(conn, old_keys=old_keys, new_key=new_key)
    if drop_old:
        key_rotation.write_key_file(target, [new_key])
    click.echo(
        f"re-encrypted {done.accounts} token(s) and {done.webhook_secrets} webhook signing secret(s)"
        f" with key {crypto.fingerprint(new_key)}, written to {target}"
    )
    if from_env:
        click.echo(f"now set LOYVERSE_SYNC_KEY to the key in {target}")


# Webhooks (cli/inbound.py): subscribe, unsubscribe, list.
from loyverse_sync.cli import inbound as _inbound  # noqa: E402

account.add_command(_inbound.subscribe)
account.add_command(_inbound.unsubscribe)
account.add_command(_inbound.webhooks)
account.add_command(_inbound.polling)
