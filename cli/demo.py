"""`loyverse-sync demo`: the whole story on a fresh machine, narrated.

Database (found or started) → migrate → the Loyverse emulator with a generated menu for a
merchant with two stores → an account and two restaurants linked to those stores → menu
import (preview, then run) → a worker → price changes made with plain SQL, as the main
app would → the queue draining → every mapped price compared with the emulator's.

Each step runs the real command (shown with a `$`), so the demo doubles as a tutorial.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import click
import psycopg

from loyverse_sync import config, crypto, db
from loyverse_sync.cli import _common

DEMO_DB = "loyverse_sync_demo"


class Narrator:
    def __init__(self, total: int) -> None:
        self.total = total
        self.step = 0
        self.started = time.monotonic()

    def __call__(self, title: str, text: str = "") -> None:
        self.step += 1
        elapsed = time.monotonic() - self.started
        click.echo()
        click.secho(f"[{self.step}/{self.total}] {title}", bold=True, fg="cyan", nl=False)
        click.secho(f"   ({elapsed:.1f} s)", dim=True)
        if text:
            click.echo(
                click.wrap_text(text, width=96, initial_indent="    ", subsequent_indent="    ")
            )


def _find_demo_database(fresh: bool) -> config.Database:
    configured = config.configured_conninfo()
    if configured is not None:
        return configured
    found = config.local_server("postgres") or config.embedded_server("postgres")
    admin = found.conninfo
    with psycopg.connect(admin, autocommit=True) as conn:
        ident = psycopg.sql.Identifier(DEMO_DB)
        if fresh:
            conn.execute(psycopg.sql.SQL("drop database if exists {} with (force)").format(ident))
        if not conn.execute("select 1 from pg_database where datname = %s", (DEMO_DB,)).fetchone():
            conn.execute(psycopg.sql.SQL("create database {}").format(ident))
    params = psycopg.conninfo.conninfo_to_dict(admin)
    params["dbname"] = DEMO_DB
    return config.Database(psycopg.conninfo.make_conninfo("", **params), found.source)


class Runner:
    """Runs `loyverse-sync ...` as a user would, showing the command and its output."""

    def __init__(self, env: dict[str, str], quiet: bool) -> None:
        self.env = env
        self.quiet = quiet

    def __call__(
        self, *args: str, show: bool = True, input: str | None = None, max_lines: int = 40
    ) -> str:
        shown = " ".join(shlex.quote(a) for a in args)
        click.secho(f"    $ loyverse-sync {shown}", fg="green")
        result = subprocess.run(
            [sys.executable, "-m", "loyverse_sync", *args],
            env=self.env,
            input=input,
            capture_output=True,
            text=True,
            check=False,
        )
        out = result.stdout.rstrip()
        if show and not self.quiet and out:
            lines = out.splitlines()
            for line in lines[:max_lines]:
                click.echo("      " + line)
            if len(lines) > max_lines:
                click.secho(f"      ... ({len(lines) - max_lines} more lines)", dim=True)
        if result.returncode != 0:
            raise click.ClickException(
                f"`loyverse-sync {shown}` failed with exit code {result.returncode}:\n{result.stderr.strip()}"
            )
        return out


@contextlib.contextmanager
def _worker(env: dict[str, str], log_path: pathlib.Path,
            command: list[str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    log = log_path.open("wb")
    # -v: INFO, so the log shows the worker starting and each account's drain (at the default
    # WARNING level a healthy worker writes nothing, and an empty log looks broken)
    proc = subprocess.Popen(
        [sys.executable, "-m", "loyverse_sync", "-v", *(command or ["worker"])],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


@contextlib.contextmanager
def _serve(env: dict[str, str], log_path: pathlib.Path) -> Iterator[str]:
    """`loyverse-sync serve` (the API and the console) on a free port, for the demo's duration."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with _worker(env, log_path, ["serve", "--port", str(port)]):
        yield f"http://127.0.0.1:{port}"


def _wait_for_drain(
    conn: psycopg.Connection[Any],
    timeout: float,
    worker: subprocess.Popen[bytes],
    log_path: pathlib.Path,
) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while True:
        row = conn.execute(
            "select coalesce(sum(pending), 0) as pending, coalesce(sum(processing), 0) as processing,"
            " coalesce(sum(failed + dead), 0) as problems, coalesce(sum(synced_last_hour), 0) as synced"
            " from loyverse.price_sync_status"
        ).fetchone()
        assert row is not None
        line = f"      queue: {row['pending']} pending, {row['processing']} in flight, {row['synced']} synced, {row['problems']} failed"
        if line != last:
            click.echo(line)
            last = line
        if row["pending"] == 0 and row["processing"] == 0:
            return
        if worker.poll() is not None:
            raise click.ClickException(
                f"the worker stopped (exit {worker.returncode}); its log:\n{log_path.read_text()[-3000:]}"
            )
        if time.monotonic() > deadline:
            raise click.ClickException(
                f"the queue did not drain in {timeout:.0f} s; worker log: {log_path}"
            )
        time.sleep(0.3)


def compare_prices(conn: psycopg.Connection[Any], state: dict[str, Any]) -> tuple[int, list[str]]:
    """Every mapped product's price vs the emulator's price for its store.

    Loyverse should hold our price after the restaurant's rounding, divided by the mapping's
    price factor (the import's tax conversion; 1 when none). Products whose mapping needs
    attention (a VARIABLE price in Loyverse, entered at the counter) have no price to compare.
    """
    prices: dict[tuple[str, str], Decimal] = {}
    for merchant in state.values():
        for item in merchant.get("items", []):
            for variant in item.get("variants", []):
                for store in variant.get("stores", []):
                    if store.get("price") is not None:
                        prices[(variant["variant_id"], store["store_id"])] = Decimal(
                            str(store["price"])
                        )
    rows = conn.execute(
        """
        select p.name, m.loyverse_variant_id, m.loyverse_store_id,
               round(loyverse.round_price(p.price, s.price_rounding_rule, a.decimal_places) / m.price_factor,
                     a.decimal_places) as expected
          from loyverse.loyverse_item_mappings m
          join public.products p on p.id = m.product_id
          join loyverse.loyverse_accounts a on a.id = m.account_id
          join loyverse.loyverse_price_sync_settings s on s.restaurant_id = m.restaurant_id
         where not m.needs_attention
        """
    ).fetchall()
    mismatches = []
    for r in rows:
        actual = prices.get((r["loyverse_variant_id"], r["loyverse_store_id"]))
        if actual is None or actual != Decimal(r["expected"]):
            mismatches.append(f"{r['name']}: database {r['expected']}, Loyverse {actual}")
    return len(rows), mismatches


@click.command("demo")
@click.option(
    "--keep-running",
    is_flag=True,
    help="Leave the emulator and worker running and print how to connect.",
)
@click.option(
    "--items",
    type=_common.IntBetween(10, 10_000),
    default=150,
    show_default=True,
    help="Items in the generated menu.",
)
@click.option("--seed", type=_common.SEED, default=7, show_default=True, help="Seed of the generated menu.")
@click.option(
    "--time-scale",
    # at most 300: the account's window (300 s / scale) stays within its 1 s minimum
    type=_common.FloatBetween(1, 300),
    default=10.0,
    show_default=True,
    help="Run Loyverse's 300-per-300-s rate window this many times faster.",
)
@click.option("--quiet", is_flag=True, help="Do not show the commands' output.")
def demo(keep_running: bool, items: int, seed: int, time_scale: float, quiet: bool) -> None:
    """Run the whole story locally: database, emulator, import, live price sync."""
    from loyverse_emulator import admin as emu_admin
    from loyverse_emulator import server as emu_server

    say = Narrator(total=9)
    say(
        "Database",
        "Looking for PostgreSQL: DATABASE_URL or PG* variables, else a server on this machine, else the embedded one that ships with the pgserver package.",
    )
    found = _find_demo_database(fresh=True)
    click.echo(f"    using {config.describe_conninfo(found.conninfo)} ({found.source})")

    say(
        "Migrate",
        "Creating our schema and procrastinate's, through the same migrations an upgrade uses.",
    )
    applied = db.migrate(found.conninfo)
    click.echo(f"    {len(applied)} migration(s) applied" if applied else "    already up to date")

    say(
        "Loyverse emulator",
        f"Starting a stateful Loyverse emulator (a real HTTP server) with a generated {items}-item menu for a merchant with two stores. It enforces Loyverse's rate limit, {time_scale:g}x faster.",
    )
    def start_emulator(port: int) -> emu_server.EmulatorServer:
        return emu_server.EmulatorServer(
            port=port, menu=items, seed=seed, stores=2, time_scale=time_scale, merchants=1
        ).start()

    try:  # the documented port when it is free, else any: the lines printed below say which
        emulator = start_emulator(8787 if keep_running else 0)
    except OSError:
        emulator = start_emulator(0)
    merchant = emulator.merchants[0]
    click.echo(
        f"    {emulator.base_url}  merchant {merchant['business_name']} ({merchant['currency']['code']}), stores: {', '.join(merchant['store_ids'])}"
    )

    workdir = pathlib.Path(tempfile.mkdtemp(prefix="loyverse-sync-demo-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(
        DATABASE_URL=found.conninfo,
        LOYVERSE_SYNC_KEY=os.environ.get("LOYVERSE_SYNC_KEY") or crypto.new_key().decode(),
        DEMO_LOYVERSE_TOKEN=merchant["tokens"][0],
        LOYVERSE_SYNC_HOME=os.environ.get("LOYVERSE_SYNC_HOME", str(config.home())),
    )
    run = Runner(env, quiet)
    try:
        say(
            "Account and restaurants",
            "Registering the Loyverse account (the token is read from an environment variable, checked with GET /merchant/, and stored encrypted) and two restaurants, one per store.",
        )
        window = 300.0 / time_scale
        run(
            "account",
            "add",
            "--name",
            "Demo merchant",
            "--token-env",
            "DEMO_LOYVERSE_TOKEN",
            "--base-url",
            emulator.base_url,
            "--rate-window",
            f"{window:g}",
        )
        restaurants = []
        with emu_admin.AdminClient(emulator.admin_url) as adm:
            stores = {
                s["id"]: s["name"]
                for s in adm.state(merchant["merchant_id"])[merchant["merchant_id"]]["stores"]
            }
        for store_id in merchant["store_ids"][:2]:
            name = f"Demo {stores.get(store_id, store_id)}"
            run("restaurant", "add", "--name", name, show=False)
            run("restaurant", "link", name, "--account", "Demo merchant", "--store", store_id)
            restaurants.append(name)

        say(
            "Menu import",
            "Previewing what the import would do (with its fidelity report: what cannot carry over exactly), then importing the menu into each restaurant.",
        )
        run("import", "preview", "--restaurant", restaurants[0], max_lines=25)
        for name in restaurants:
            run("import", "run", "--restaurant", name, "--conflict", "update", max_lines=15)

        # the demo's one database handle: the connection it reads through, and the metrics' scrapes
        with db.Connector(found.conninfo, role="cli", max_size=2) as handle, handle.connection() as conn:
            mapped = conn.execute(
                "select count(*) as n, count(*) filter (where needs_attention) as attention"
                " from loyverse.loyverse_item_mappings"
            ).fetchone()
            assert mapped is not None
            _echo_wrapped(
                f"{mapped['n']} products are mapped to Loyverse variants"
                + (
                    f"; {mapped['attention']} of them have a price entered at the counter in"
                    " Loyverse (VARIABLE), imported as 0.00 and flagged needs_attention: they"
                    " are never sent, so the comparison at the end leaves them out"
                    if mapped["attention"]
                    else ""
                )
            )

            say(
                "Worker",
                "Starting `loyverse-sync worker`: a procrastinate worker that drains the price-sync queue within the account's rate budget.",
            )
            log_path = workdir / "worker.log"
            with _worker(env, log_path) as worker, _serve(env, workdir / "serve.log") as console_url:
                click.echo(f"    worker pid {worker.pid}, log {log_path}")
                from loyverse_sync import apikeys

                demo_key = apikeys.create(conn, f"demo-admin-{os.getpid()}", restaurant_id=None, admin=True)
                click.echo(f"    console and API: {console_url}/console/  (sign in with the API key {demo_key})")
                time.sleep(1.0)

                say(
                    "The main app changes prices",
                    "Exactly what the restaurant's own app does: plain SQL. Triggers queue each change; nothing else is called.",
                )
                one = conn.execute(
                    "select p.id, p.name, p.price from public.products p join loyverse.loyverse_item_mappings m on m.product_id = p.id order by p.name limit 1"
                ).fetchone()
                assert one is not None, "the import mapped no product"
                sql1 = f"UPDATE products SET price = price + 0.50 WHERE id = '{one['id']}';"
                click.secho(f"    psql> {sql1}", fg="magenta")
                conn.execute(
                    "update public.products set price = price + 0.50 where id = %s", (one["id"],)
                )
                click.echo(
                    f"    {one['name']}: {one['price']} -> {Decimal(one['price']) + Decimal('0.50')}"
                )
                _wait_for_drain(conn, 60, worker, log_path)
                category = conn.execute(
                    "select c.id, c.name, count(*) as n from public.categories c join public.products p on p.category_id = c.id"
                    " join loyverse.loyverse_item_mappings m on m.product_id = p.id group by c.id, c.name order by count(*) desc limit 1"
                ).fetchone()
                assert category is not None
                sql2 = f"UPDATE products SET price = round(price * 1.05, 2) WHERE category_id = '{category['id']}';  -- {category['name']}, +5 %"
                click.secho(f"    psql> {sql2}", fg="magenta")
                same = conn.execute(
                    "select count(*) filter (where round(price * 1.05, 2) = price) as n,"
                    " count(*) filter (where price = 0) as zero"
                    " from public.products where category_id = %s",
                    (category["id"],),
                ).fetchone()
                assert same is not None
                # the rows this statement queues, whatever the running worker has done with them
                # by the time we count (it may have claimed or sent some already)
                before = conn.execute(
                    "select coalesce(max(id), 0) as id from loyverse.loyverse_price_sync_queue"
                ).fetchone()
                updated = conn.execute(
                    "update public.products set price = round(price * 1.05, 2) where category_id = %s",
                    (category["id"],),
                ).rowcount
                queued = conn.execute(
                    "select count(*) as n from loyverse.loyverse_price_sync_queue q"
                    " join public.products p on p.id = q.product_id"
                    " where p.category_id = %s and q.id > %s",
                    (category["id"], before["id"] if before else 0),
                ).fetchone()
                _echo_wrapped(
                    f"{updated} products of {category['name']} updated in one statement;"
                    f" {queued['n'] if queued else 0} price changes queued"
                    + (
                        f" ({same['n']} kept their price: "
                        + (
                            f"{same['zero']} are 0.00, VARIABLE prices in Loyverse, and +5 % of 0 is 0;"
                            " a trigger queues a change only when the price moves)"
                            if same["zero"] == same["n"]
                            else "+5 % rounds back to the same cents; a trigger queues a change only when the price moves)"
                        )
                        if same["n"]
                        else ""
                    )
                )

                say(
                    "The queue drains",
                    "The worker claims queued changes, reads the items in bulk, writes one request per item, and verifies Loyverse's answer.",
                )
                _wait_for_drain(conn, 90, worker, log_path)
                run("sync", "status", max_lines=10)
                run("dashboard", "--once", "--width", "150", max_lines=60)

                say(
                    "Compare",
                    "Reading every mapped product's price in the emulator's state and comparing it with the database's (rounded) price.",
                )
                with emu_admin.AdminClient(emulator.admin_url) as adm:
                    state = adm.state()
                total, mismatches = compare_prices(conn, state)
                with emu_admin.AdminClient(emulator.admin_url) as adm:
                    counters = adm.counters()
                if mismatches:
                    for m in mismatches[:10]:
                        click.secho(f"    MISMATCH {m}", fg="red")
                    raise click.ClickException(f"{total - len(mismatches)} of {total} prices match")
                click.secho(f"    {total} of {total} prices match", fg="green", bold=True, nl=False)
                click.echo(
                    f" (the {mapped['attention']} VARIABLE prices mapped above are not compared)"
                    if mapped["attention"]
                    else ""
                )
                click.echo(f"    Loyverse requests made in all: {_total_requests(counters)}")

                if keep_running:
                    click.echo()
                    click.secho("The stack keeps running (Ctrl-C to stop):", bold=True)
                    # lines that work as pasted into another shell: quoted, and the command by its
                    # full path (`bash scripts/demo` does not put .venv/bin on the PATH)
                    url = shlex.quote(found.conninfo)
                    click.echo(f"    psql           psql {url}")
                    click.echo(f"    dashboard      DATABASE_URL={url} {_command()} dashboard")
                    click.echo(f"    sync status    DATABASE_URL={url} {_command()} sync status")
                    from loyverse_sync import metrics as metrics_mod

                    try:
                        metrics = metrics_mod.serve_metrics(handle, 9108)
                    except OSError:  # taken: any free port
                        metrics = metrics_mod.serve_metrics(handle, 0)
                    click.echo(
                        f"    metrics        http://127.0.0.1:{metrics.server_address[1]}/metrics"
                    )
                    click.echo(
                        f"    emulator       {emulator.base_url}  token {merchant['tokens'][0]}"
                        f"  admin {emulator.admin_url}"
                    )
                    click.echo(f"    worker log     {log_path}")
                    # SIGTERM (kill, a supervisor) stops the stack as Ctrl-C does: the worker
                    # is stopped too, not left running without its emulator
                    signal.signal(signal.SIGTERM, _interrupt)
                    with contextlib.suppress(KeyboardInterrupt):
                        while worker.poll() is None:
                            time.sleep(1)
    finally:
        emulator.stop()
    click.echo()
    click.secho(f"Demo finished in {time.monotonic() - say.started:.1f} s.", bold=True)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _echo_wrapped(text: str) -> None:
    click.echo(click.wrap_text(text, width=96, initial_indent="    ", subsequent_indent="      "))


def _command() -> str:
    """How to run loyverse-sync from another shell: the console script beside this Python
    (the venv's), else this Python with -m."""
    script = pathlib.Path(sys.executable).with_name("loyverse-sync")
    if script.exists():
        return shlex.quote(str(script))
    return f"{shlex.quote(sys.executable)} -m loyverse_sync"


def _total_requests(counters: dict[str, Any]) -> Any:
    try:
        return sum(int(m.get("requests", 0)) for m in counters.values())
    except (AttributeError, TypeError, ValueError):
        return counters
