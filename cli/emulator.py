"""`loyverse-sync emulator ...`: run the Loyverse emulator and script a running one."""

from __future__ import annotations

import json
import signal
import sys
import threading
from typing import Any

import click
import httpx

from loyverse_emulator import admin, server, state
from loyverse_sync import limits
from loyverse_sync.cli import _common


class _OneLineError(click.ClickException):
    """Bad usage: one line on stderr, exit code 2."""

    exit_code = 2


class _Command(click.Command):
    """Reports usage errors as one line (`Error: ...`) with exit code 2."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            raise _OneLineError(exc.format_message().replace("\n", " ")) from None


emulator = click.Group("emulator", help="Run and script the Loyverse emulator.")


class _Menu(click.ParamType):
    """demo, empty or a number of items from 0 to 100000."""

    name = "menu"
    #: numbers are item counts: tests/acceptance/test_cli_ranges.py feeds it hostile numbers
    takes_numbers = True
    _items = _common.IntBetween(0, 100_000)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value in ("demo", "empty"):
            return value
        if isinstance(value, int) or str(value).strip().lstrip("+-").isdigit():
            return self._items.convert(value, param, ctx)
        self.fail(f"{value!r} is not a menu (allowed: demo, empty or a number of items {self._items.allowed()})",
                  param, ctx)


#: Retry-After and similar delays: more than 0, at most a day.
_DELAY = _common.seconds(low=0, low_open=True)
_PROBABILITY = _common.FloatBetween(0, 1)
_COUNT = _common.IntBetween(0, 1_000_000)


@emulator.command("serve", cls=_Command)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option(
    "--port",
    type=_common.IntBetween(0, 65_535),
    default=8787,
    show_default=True,
    help="0 picks a free port.",
)
@click.option(
    "--menu",
    "menu_spec",
    default="demo",
    type=_Menu(),
    show_default=True,
    help="demo, empty or N items for the first merchant.",
)
@click.option(
    "--seed",
    type=_common.SEED,
    default=0,
    show_default=True,
    help="Seed of the menu generator and fault RNG.",
)
@click.option(
    "--state",
    "state_file",
    type=click.Path(dir_okay=False),
    help="Load state from FILE if it exists; save to it on exit.",
)
@click.option(
    "--state-from",
    type=click.Path(exists=True, file_okay=False),
    help="Load the first merchant from Loyverse-format JSON files in DIR.",
)
@click.option(
    "--rich-menu",
    is_flag=True,
    help="Generated menus also have composite items, suppliers, purchase costs, two taxes, ...",
)
@click.option("--token", help="Fix the first merchant's first token (else random).")
@click.option(
    "--time-scale",
    type=_common.FloatBetween(0, 100_000, min_open=True),
    default=1.0,
    show_default=True,
    help="Divide the rate-limit window (100: 300 requests per 3 s).",
)
@click.option("--merchants", type=_common.IntBetween(1, 50), default=2, show_default=True)
@click.option(
    "--stores",
    type=_common.IntBetween(1, 50),
    default=2,
    show_default=True,
    help="Stores of the first merchant.",
)
@click.option(
    "--retry-after",
    type=_DELAY,
    help="Send Retry-After: S on 429 (off by default).",
)
@click.option(
    "--stores-merge",
    type=click.Choice(state.STORES_MERGE_CHOICES),
    default="merge",
    show_default=True,
    help="How a partial stores[] on a variant POST is applied.",
)
@click.option(
    "--default-price-moves-stores/--no-default-price-moves-stores",
    default=False,
    show_default=True,
    help="Changing default_price rewrites store prices equal to the old default.",
)
@click.option(
    "--oauth",
    "oauth_apps",
    is_flag=True,
    help="Give each merchant an OAuth app and print its client id, secret and tokens "
    "(access tokens expire after 43200 s / --time-scale).",
)
@click.option(
    "--post-semantics",
    type=click.Choice(state.POST_SEMANTICS_CHOICES),
    default="merge",
    show_default=True,
    help="An update POST keeps what it omits (merge) or resets it to the create defaults (whole).",
)
@click.option(
    "--webhooks-list",
    type=click.Choice(state.WEBHOOKS_LIST_CHOICES),
    default="object",
    show_default=True,
    help='GET /webhooks/ answers {"webhooks": [...]} (object) or a bare array.',
)
@click.option(
    "--webhook-https-only/--no-webhook-https-only",
    default=False,
    show_default=True,
    help="POST /webhooks/ refuses URLs that are not https://.",
)
def serve(
    host: str,
    port: int,
    menu_spec: str | int,
    seed: int,
    state_file: str | None,
    state_from: str | None,
    rich_menu: bool,
    token: str | None,
    time_scale: float,
    merchants: int,
    stores: int,
    retry_after: float | None,
    stores_merge: str,
    default_price_moves_stores: bool,
    post_semantics: str,
    webhooks_list: str,
    webhook_https_only: bool,
    oauth_apps: bool = False,
) -> None:
    """Serve the emulator until Ctrl-C or SIGTERM."""
    try:
        emu = server.EmulatorServer(
            host=host, port=port, menu=menu_spec, seed=seed, time_scale=time_scale, token=token,
            merchants=merchants, stores=stores, state_file=state_file, state_from=state_from,
            stores_merge=stores_merge, default_price_moves_stores=default_price_moves_stores,
            retry_after=retry_after, oauth_apps=oauth_apps, post_semantics=post_semantics, webhooks_list=webhooks_list,
            webhook_https_only=webhook_https_only, rich_menu=rich_menu,
        )  # fmt: skip
        emu.start()
    except (OSError, ValueError) as exc:
        raise _OneLineError(str(exc)) from None
    done = threading.Event()
    previous = (
        signal.signal(signal.SIGTERM, lambda *_: done.set())
        if threading.current_thread() is threading.main_thread()
        else None
    )
    try:
        for m in emu.merchants:
            currency = m["currency"]
            click.echo(
                f"merchant {m['merchant_id']}  {m['business_name']}  {currency['code']} ({currency['decimal_places']} decimals)"
            )
            click.echo(f"  stores: {', '.join(m['store_ids'])}")
            click.echo(f"  tokens: {', '.join(m['tokens'])}")
            for app in (a for a in emu.oauth_apps if a["merchant_id"] == m["merchant_id"]):
                click.echo(
                    f"  OAuth app: client_id {app['client_id']}  client_secret {app['client_secret']}"
                )
                click.echo(
                    f"    refresh_token {app['refresh_token']}  access_token {app['access_token']}"
                    f" (expires in {app['expires_in']} s)"
                )
        click.echo(f"base URL:  {emu.base_url}")
        click.echo(f"admin URL: {emu.admin_url}")
        if oauth_apps:
            click.echo(f"token URL: {emu.token_url}")
        sys.stdout.flush()
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _admin_call(url: str, call: Any) -> Any:
    try:
        with admin.AdminClient(url) as client:
            return call(client)
    except admin.AdminError as exc:
        raise _OneLineError(str(exc)) from None
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot reach the emulator at {url}: {exc}") from None


_url_option = click.option(
    "--url", required=True, help="The emulator's admin URL, e.g. http://127.0.0.1:8787/_emulator."
)
_merchant_option = click.option(
    "--merchant", "merchant_id", help="Merchant id (default: the first merchant)."
)


@emulator.command("faults", cls=_Command)
@_url_option
@_merchant_option
@click.option("--p500", type=_PROBABILITY, help="Probability of a 500.")
@click.option("--p429", type=_PROBABILITY, help="Probability of a 429.")
@click.option(
    "--ptimeout",
    type=_PROBABILITY,
    help="Probability of hanging --hang seconds, then closing.",
)
@click.option(
    "--pdrop",
    type=_PROBABILITY,
    help="Probability of closing the socket without a response.",
)
@click.option(
    "--pslow", type=_PROBABILITY, help="Probability of answering after --delay seconds."
)
@click.option(
    "--delay", "delay_seconds", type=_common.seconds(), help="Delay of a slow response (s)."
)
@click.option(
    "--hang", "hang_seconds", type=_common.seconds(), help="Hang time of a timeout (s)."
)
@click.option("--fail-next", type=_COUNT, help="Fail the next N matching requests.")
@click.option("--fail-next-kind", type=click.Choice(["500", "429", "timeout", "drop", "slow"]))
@click.option(
    "--fail-after-write",
    type=_PROBABILITY,
    help="Probability of applying a write, then answering 500/dropping.",
)
@click.option(
    "--fail-after-write-next", type=_COUNT, help="Do that to the next N writes."
)
@click.option("--fail-after-write-kind", type=click.Choice(["500", "drop"]))
@click.option(
    "--method", "methods", multiple=True, help="Only requests with this method (repeatable)."
)
@click.option(
    "--path-prefix", help="Only paths (relative to /v1.0) starting with this, e.g. /variants."
)
@click.option("--seed", type=_common.SEED, help="Reseed the fault RNG.")
@click.option("--clear", is_flag=True, help="Reset all faults first.")
def faults_cmd(
    url: str, merchant_id: str | None, methods: tuple[str, ...], clear: bool, **settings: Any
) -> None:
    """Set fault injection for one merchant; prints the resulting settings."""
    values = {k: v for k, v in settings.items() if v is not None}
    if methods:
        values["methods"] = list(methods)
    result = _admin_call(url, lambda c: c.set_faults(merchant_id, clear=clear, **values))
    click.echo(json.dumps(result, indent=2))


@emulator.command("modes", cls=_Command)
@_url_option
@_merchant_option
@click.option("--stores-merge", type=click.Choice(state.STORES_MERGE_CHOICES))
@click.option("--default-price-moves-stores/--no-default-price-moves-stores", default=None)
@click.option(
    "--retry-after", type=_DELAY, help="Seconds sent in Retry-After on 429."
)
@click.option("--no-retry-after", is_flag=True, help="Stop sending Retry-After.")
@click.option(
    "--rate-limit",
    type=_common.IntBetween(limits.RATE_LIMIT_REQUESTS_MIN, limits.RATE_LIMIT_REQUESTS_MAX),
    help="Requests per window (default 300).",
)
@click.option("--no-rate-limit", is_flag=True, help="Disable the rate limit.")
@click.option("--post-semantics", type=click.Choice(state.POST_SEMANTICS_CHOICES))
@click.option("--webhooks-list", type=click.Choice(state.WEBHOOKS_LIST_CHOICES))
@click.option("--webhook-https-only/--no-webhook-https-only", default=None)
@click.option(
    "--clock-offset-seconds",
    type=_common.FloatBetween(-31_622_400, 31_622_400),
    help="Run the merchant's clock ahead (positive) or behind (negative) ours, in seconds.",
)
def modes_cmd(
    url: str,
    merchant_id: str | None,
    stores_merge: str | None,
    default_price_moves_stores: bool | None,
    retry_after: float | None,
    no_retry_after: bool,
    rate_limit: int | None,
    no_rate_limit: bool,
    post_semantics: str | None,
    webhooks_list: str | None,
    webhook_https_only: bool | None,
    clock_offset_seconds: float | None,
) -> None:
    """Show or switch the [UNKNOWN]-behaviour modes of one merchant (and its clock offset)."""
    values: dict[str, Any] = {
        k: v
        for k, v in (
            ("post_semantics", post_semantics),
            ("webhooks_list", webhooks_list),
            ("webhook_https_only", webhook_https_only),
            ("clock_offset_seconds", clock_offset_seconds),
        )
        if v is not None
    }
    if stores_merge is not None:
        values["stores_merge"] = stores_merge
    if default_price_moves_stores is not None:
        values["default_price_moves_stores"] = default_price_moves_stores
    if retry_after is not None or no_retry_after:
        values["retry_after"] = None if no_retry_after else retry_after
    if rate_limit is not None or no_rate_limit:
        values["rate_limit"] = None if no_rate_limit else rate_limit
    if values:
        result = _admin_call(url, lambda c: c.set_modes(merchant_id, **values))
    else:
        result = _admin_call(url, lambda c: c.modes(merchant_id))
    click.echo(json.dumps(result, indent=2))


@emulator.command("requests", cls=_Command)
@_url_option
@_merchant_option
@click.option("--since", type=_common.IntBetween(0, limits.BIGINT_MAX), default=0, help="Only entries with id > SINCE.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of one line per request.")
def requests_cmd(url: str, merchant_id: str | None, since: int, as_json: bool) -> None:
    """Print the emulator's request log."""
    rows = _admin_call(url, lambda c: c.requests(since=since, merchant_id=merchant_id))
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    for row in rows:
        target = row["path"] + (f"?{row['query']}" if row["query"] else "")
        fault = f"  fault={row['fault']}" if row.get("fault") else ""
        click.echo(
            f"{row['id']:>6} {row['time']} {row['method']:<6} {target} -> {row['status']}  {row['merchant_id']}{fault}"
        )


@emulator.command("state", cls=_Command)
@_url_option
@_merchant_option
def state_cmd(url: str, merchant_id: str | None) -> None:
    """Print the state dump (items with variants and store prices, categories, ...) as JSON."""
    result = _admin_call(url, lambda c: c.state(merchant_id))
    click.echo(json.dumps(result, indent=2, ensure_ascii=False))


@emulator.command("oauth", cls=_Command)
@_url_option
@click.option(
    "--ttl",
    "ttl_seconds",
    type=_common.seconds(limits.SECONDS_MAX * 365, low_open=True),
    help="Access-token lifetime in emulated seconds (default 43200).",
)
@click.option(
    "--rotation",
    type=click.Choice(["strict", "keep"]),
    help="strict: a refresh token works once; keep: it stays valid.",
)
@click.option(
    "--lose-next",
    type=_common.IntBetween(0, 1_000_000),
    help="Apply the next N refreshes but answer them with a 500.",
)
@click.option(
    "--advance",
    type=_common.seconds(limits.SECONDS_MAX * 365, low_open=True),
    help="Move the OAuth clock forward by S emulated seconds.",
)
@click.option(
    "--new-app", is_flag=True, help="Create an OAuth app (of --merchant) and print its tokens."
)
@_merchant_option
def oauth_cmd(
    url: str,
    ttl_seconds: float | None,
    rotation: str | None,
    lose_next: int | None,
    advance: float | None,
    new_app: bool,
    merchant_id: str | None,
) -> None:
    """OAuth apps: settings, clock, a new app; prints the settings and counters."""
    settings = {
        k: v
        for k, v in (("ttl_seconds", ttl_seconds), ("rotation", rotation), ("lose_next", lose_next))
        if v is not None
    }
    if new_app:
        click.echo(
            json.dumps(_admin_call(url, lambda c: c.create_oauth_app(merchant_id)), indent=2)
        )
    if settings:
        _admin_call(url, lambda c: c.set_oauth(**settings))
    if advance is not None:
        _admin_call(url, lambda c: c.advance_oauth_clock(advance))
    click.echo(json.dumps(_admin_call(url, lambda c: c.oauth()), indent=2))
