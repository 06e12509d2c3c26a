"""The `import` CLI end to end: emulator over HTTP, real Postgres, click's CliRunner (and a
subprocess for the kill tests)."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from loyverse_emulator import admin, server
from loyverse_sync import db
from loyverse_sync.cli import import_ as import_cli
from loyverse_sync.importer import snapshot
from tests.support import importer as testing


@pytest.fixture
def emu() -> Iterator[server.EmulatorServer]:
    with server.EmulatorServer(menu=30, token="tok", merchants=1, seed=1) as e:
        yield e


@pytest.fixture
def env(dsn: str, conn: psycopg.Connection[Any], emu: server.EmulatorServer, fernet_key: bytes,
        monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("DATABASE_URL", dsn)
    restaurant_id, _account_id, _store_id = testing.link_emulator(conn, emu)
    return {"restaurant_id": restaurant_id, "dsn": dsn, "conn": conn, "emu": emu}


def cli(*args: str, input: str | None = None) -> Any:
    return CliRunner().invoke(import_cli.import_group, list(args), input=input, catch_exceptions=False)


def _products(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    return conn.execute("select id, name, sku, price, is_active, xmin::text as xmin from public.products order by name, id").fetchall()


def test_preview_run_status_rerun_list(env: dict[str, Any]) -> None:
    conn = env["conn"]
    out = cli("preview", "-r", "Bistro", "--json")
    assert out.exit_code == 0, out.output
    report = json.loads(out.output[out.output.index("{"):])
    assert report["summary"]["create"] > 0 and conn.execute("select count(*) as n from public.products").fetchone()["n"] == 0
    out = cli("run", "-r", "Bistro")
    assert out.exit_code == 0, out.output
    assert "created" in out.output
    products = _products(conn)
    assert len(products) == report["summary"]["create"]
    run_id = conn.execute("select max(id) as id from loyverse.loyverse_import_runs").fetchone()["id"]
    out = cli("status", str(run_id))
    assert out.exit_code == 0 and "SUCCESS" in out.output
    # Re-sync of an unchanged menu: nothing is written (row versions unchanged).
    out = cli("run", "-r", "Bistro")
    assert out.exit_code == 0 and "created 0, updated 0" in out.output
    assert _products(conn) == products
    out = cli("list")
    assert out.exit_code == 0 and str(run_id) in out.output


def test_resync_updates_in_place_and_deactivates_deleted_variants(env: dict[str, Any]) -> None:
    conn, emu = env["conn"], env["emu"]
    assert cli("run", "-r", "Bistro").exit_code == 0
    n = len(_products(conn))
    item = emu.state.items()[0]
    from loyverse_sync.loyverse import client as client_mod
    with client_mod.LoyverseClient(emu.base_url, "tok") as c:
        body = {k: item[k] for k in ("id", "item_name", "variants")}
        body["item_name"] = item["item_name"] + " renamed"
        c.post_item(body)
    other = emu.state.items()[1]
    with admin.AdminClient(emu.admin_url) as adm:
        adm.delete_item(other["id"])  # in the back office
    out = cli("run", "-r", "Bistro", "--refresh")
    assert out.exit_code == 0, out.output
    products = _products(conn)
    assert len(products) == n  # updated in place, nothing duplicated
    assert any(p["name"].startswith(item["item_name"] + " renamed") for p in products)
    gone = {v["variant_id"] for v in other["variants"]}
    inactive = conn.execute(
        "select count(*) as n from public.products p join loyverse.loyverse_item_mappings m on m.product_id = p.id"
        " where not p.is_active and m.loyverse_variant_id = any(%s)", (list(gone),)).fetchone()["n"]
    assert inactive == len(gone)


def _seed_conflicts(env: dict[str, Any]) -> list[dict[str, Any]]:
    """Two existing products: one with the SKU of a Loyverse variant, one with a name."""
    conn, emu = env["conn"], env["emu"]
    items = emu.state.items()
    v1 = items[0]["variants"][0]
    single = next(i for i in items[1:] if len(i["variants"]) == 1)
    conn.execute("insert into public.products (restaurant_id, name, sku, price) values (%s, 'Mine', %s, 1)",
                 (env["restaurant_id"], v1["sku"]))
    conn.execute("insert into public.products (restaurant_id, name, price) values (%s, %s, 2)",
                 (env["restaurant_id"], "  " + single["item_name"].upper() + " "))
    return [v1, single["variants"][0]]


@pytest.mark.parametrize("strategy", ["skip", "update", "duplicate"])
def test_conflict_strategies(env: dict[str, Any], strategy: str) -> None:
    conn = env["conn"]
    v_sku, v_name = _seed_conflicts(env)
    out = cli("preview", "-r", "Bistro", "--json", "--conflict", strategy)
    report = json.loads(out.output[out.output.index("{"):])
    rules = {c["variant_id"]: c["match_rule"] for c in report["conflicts"]}
    assert rules[v_sku["variant_id"]] == "sku" and rules[v_name["variant_id"]] == "name"
    out = cli("run", "-r", "Bistro", "--conflict", strategy)
    assert out.exit_code == 0, out.output
    mine = conn.execute("select * from public.products where name = 'Mine' or sku = %s", (v_sku["sku"],)).fetchall()
    if strategy == "skip":
        assert [p["name"] for p in mine] == ["Mine"]
    elif strategy == "update":
        assert len(mine) == 1 and mine[0]["name"] != "Mine"
        assert conn.execute("select count(*) as n from loyverse.loyverse_item_mappings where product_id = %s",
                            (mine[0]["id"],)).fetchone()["n"] == 1
    else:
        dup = conn.execute("select name, sku from public.products where name like '%% (Loyverse)'").fetchall()
        assert len(dup) == 2 and any(d["sku"] == v_sku["sku"] + "-LV" for d in dup)
        assert conn.execute("select count(*) as n from public.products where name = 'Mine'").fetchone()["n"] == 1


def test_manual_decisions_refuse_while_undecided(env: dict[str, Any], tmp_path: pathlib.Path) -> None:
    conn = env["conn"]
    v_sku, v_name = _seed_conflicts(env)
    partial = tmp_path / "decisions.csv"
    partial.write_text(f"variant_id,decision\n{v_sku['variant_id']},update\n")
    out = cli("run", "-r", "Bistro", "--conflict", "manual", "--decisions", str(partial))
    assert out.exit_code == 1 and "no decision" in out.output and v_name["variant_id"] in out.output
    assert conn.execute("select count(*) as n from public.products").fetchone()["n"] == 2
    full = tmp_path / "decisions.json"
    full.write_text(json.dumps({v_sku["variant_id"]: "update", v_name["variant_id"]: "duplicate"}))
    out = cli("run", "-r", "Bistro", "--conflict", "manual", "--decisions", str(full))
    assert out.exit_code == 0, out.output
    assert conn.execute("select count(*) as n from public.products where name = 'Mine'").fetchone()["n"] == 0
    bad = tmp_path / "bad.csv"
    bad.write_text(f"{v_sku['variant_id']},maybe\n")
    out = cli("run", "-r", "Bistro", "--conflict", "manual", "--decisions", str(bad))
    assert out.exit_code == 2


def test_field_mapping_valid_and_invalid(env: dict[str, Any]) -> None:
    conn = env["conn"]
    out = cli("run", "-r", "Bistro", "--map", "handle=slug")
    assert out.exit_code == 2 and "no column slug" in out.output
    out = cli("run", "-r", "Bistro", "--map", "nonsense=name")
    assert out.exit_code == 2 and "not a Loyverse" in out.output
    out = cli("run", "-r", "Bistro", "--map", "handle=name")
    assert out.exit_code == 0, out.output
    names = [p["name"] for p in _products(conn)]
    assert names and all(n.split(" (")[0] == n.split(" (")[0].lower() and " " not in n.split(" (")[0] for n in names)


def test_undo_refuses_after_a_change_and_force_restores(env: dict[str, Any]) -> None:
    conn = env["conn"]
    conn.execute("insert into public.products (restaurant_id, name, price) values (%s, 'Untouched', 3)", (env["restaurant_id"],))
    assert cli("run", "-r", "Bistro").exit_code == 0
    run_id = conn.execute("select max(id) as id from loyverse.loyverse_import_runs").fetchone()["id"]
    conn.execute("update public.products set price = price + 1 where id = (select product_id from loyverse.loyverse_item_mappings limit 1)")
    out = cli("undo", str(run_id))
    assert out.exit_code == 1 and "changed since" in out.output
    out = cli("undo", str(run_id), "--force")
    assert out.exit_code == 0, out.output
    assert [p["name"] for p in _products(conn)] == ["Untouched"]
    assert conn.execute("select count(*) as n from loyverse.loyverse_item_mappings").fetchone()["n"] == 0
    assert conn.execute("select count(*) as n from public.categories").fetchone()["n"] == 0
    assert cli("undo", str(run_id)).exit_code == 2  # already undone


def test_undo_of_a_resync_restores_before_images(env: dict[str, Any]) -> None:
    conn, _emu = env["conn"], env["emu"]
    v_sku, _ = _seed_conflicts(env)
    before = conn.execute("select name, price from public.products where name = 'Mine'").fetchone()
    assert cli("run", "-r", "Bistro", "--conflict", "update").exit_code == 0
    run_id = conn.execute("select max(id) as id from loyverse.loyverse_import_runs").fetchone()["id"]
    assert cli("undo", str(run_id)).exit_code == 0
    assert conn.execute("select name, price from public.products where sku = %s", (v_sku["sku"],)).fetchone() == before


def test_wizard_through_stdin(env: dict[str, Any]) -> None:
    conn = env["conn"]
    # a category typo is answered with the known ones and asked again, not the end
    answers = "\n".join(["n", "Nonexistent", "", "", "", "", "", "skip", "", "y"]) + "\n"
    out = cli("wizard", "-r", "Bistro", input=answers)
    assert out.exit_code == 0, out.output
    assert "--category 'Nonexistent' names no category" in out.output and "select again" in out.output
    assert "Step 7/7" in out.output and "created" in out.output
    assert conn.execute("select count(*) as n from public.products").fetchone()["n"] > 0


def _subprocess_run(env: dict[str, Any], *args: str) -> subprocess.Popen[bytes]:
    code = "import sys; from loyverse_sync.cli.import_ import import_group; import_group(sys.argv[1:])"
    return subprocess.Popen([sys.executable, "-c", code, *args], env={**os.environ},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture
def big(dsn: str, connector: db.Connector, conn: psycopg.Connection[Any], fernet_key: bytes, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("DATABASE_URL", dsn)
    with server.EmulatorServer(menu=1500, token="tok", merchants=1, seed=2) as e:
        restaurant_id, _, _ = testing.link_emulator(conn, e)
        snap = snapshot.fetch(connector, restaurant_id)  # the subprocess reuses it (--max-age)
        yield {"restaurant_id": restaurant_id, "snapshot": snap}


def _wait_for(conn: psycopg.Connection[Any], predicate: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = conn.execute(f"select * from loyverse.loyverse_import_runs where {predicate} order by id desc limit 1").fetchone()
        if row:
            return row
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {predicate}")


def _wait_interrupted(run_id: int) -> None:
    """The server notices the killed client within moments; until then the run looks alive."""
    deadline = time.monotonic() + 15
    while "INTERRUPTED" not in (out := cli("status", str(run_id))).output and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "INTERRUPTED" in out.output


@pytest.mark.slow
def test_killed_atomic_import_writes_nothing(conn: psycopg.Connection[Any], big: dict[str, Any]) -> None:
    proc = _subprocess_run(big, "run", "-r", "Bistro", "--max-age", "3600")
    try:
        run = _wait_for(conn, "status = 'RUNNING' and items_done > 0")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(30)
    assert conn.execute("select count(*) as n from public.products").fetchone()["n"] == 0
    assert conn.execute("select count(*) as n from loyverse.loyverse_item_mappings").fetchone()["n"] == 0
    _wait_interrupted(run["id"])
    out = cli("resume", str(run["id"]))
    assert out.exit_code == 0, out.output
    assert conn.execute("select count(*) as n from loyverse.loyverse_item_mappings").fetchone()["n"] > 0


@pytest.mark.slow
def test_killed_batched_import_resumes_without_duplicates(conn: psycopg.Connection[Any], big: dict[str, Any]) -> None:
    proc = _subprocess_run(big, "run", "-r", "Bistro", "--max-age", "3600", "--batch-size", "20")
    try:
        run = _wait_for(conn, "status = 'RUNNING' and items_done > 0")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(30)
    _wait_interrupted(run["id"])
    partial = conn.execute("select count(*) as n from public.products").fetchone()["n"]
    out = cli("resume", str(run["id"]))
    assert out.exit_code == 0, out.output
    total = conn.execute("select count(*) as n from public.products").fetchone()["n"]
    variants = conn.execute("select items_total from loyverse.loyverse_import_runs where id = %s", (run["id"],)).fetchone()["items_total"]
    assert partial < total
    assert total == conn.execute("select count(distinct loyverse_variant_id) as n from loyverse.loyverse_item_mappings").fetchone()["n"]
    assert total <= variants
    assert conn.execute("select count(*) as n from (select name, sku from public.products group by 1, 2 having count(*) > 1) d").fetchone()["n"] == 0


def test_an_unknown_category_or_item_is_an_error_naming_it(env: dict[str, Any]) -> None:
    """A typo in the selection used to select nothing and report an empty SUCCESS."""
    conn, emu = env["conn"], env["emu"]
    category = emu.state.merchant().collections["categories"]
    known = next(iter(category.values())).data["name"]
    for args, named in (
        (["run", "-r", "Bistro", "--category", "Nonexistent"], "--category 'Nonexistent'"),
        (["run", "-r", "Bistro", "--item", "No such dish", "--dry-run"], "--item 'No such dish'"),
        (["preview", "-r", "Bistro", "--exclude", "Nope"], "--exclude 'Nope'"),
        (["run", "-r", "Bistro", "--category", known, "--category", "Typo"], "--category 'Typo'"),
    ):
        out = CliRunner().invoke(import_cli.import_group, args)
        errors = [line for line in out.output.splitlines() if line.startswith("Error")]
        assert out.exit_code == 2, out.output
        assert len(errors) == 1 and named in errors[0] and known in errors[0], out.output
    assert conn.execute("select count(*) as n from loyverse.loyverse_import_runs").fetchone()["n"] == 0
    assert conn.execute("select count(*) as n from public.products").fetchone()["n"] == 0
    # the same category by name, in any case, selects what it names
    out = cli("run", "-r", "Bistro", "--category", known.upper())
    assert out.exit_code == 0 and "SUCCESS" in out.output, out.output
    assert conn.execute("select count(*) as n from public.products").fetchone()["n"] > 0


def test_preview_does_not_print_a_huge_name_whole(env: dict[str, Any]) -> None:
    emu = env["emu"]
    item = emu.state.items()[0]
    huge = "Soup " + "x" * 1_000_000
    # Loyverse's API caps names at 64 characters; a recorded payload (--state-from) need not
    with emu.state.lock:
        emu.state.merchant().collections["items"][item["id"]].data["item_name"] = huge
    out = cli("preview", "-r", "Bistro", "--refresh")
    assert out.exit_code == 0, out.output[:2000]
    shown = [line for line in out.output.splitlines() if "Soup xxx" in line]
    assert shown and all(len(line) < 600 and "x…" in line for line in shown), [s[:200] for s in shown]
    assert len(out.output) < 200_000
    # --json is the data, whole
    out = cli("preview", "-r", "Bistro", "--json")
    assert huge in out.output


def test_a_run_locked_in_another_database_is_not_this_ones(env: dict[str, Any]) -> None:
    """Advisory locks are per database, pg_locks is the server's: run 1 of another database on
    the same server (another tenant, a parallel test) must not make ours look still running."""
    from tests.conftest import server_conninfo

    conn = env["conn"]
    assert cli("run", "-r", "Bistro").exit_code == 0
    run_id = conn.execute("select max(id) as id from loyverse.loyverse_import_runs").fetchone()["id"]
    with psycopg.connect(server_conninfo("postgres"), autocommit=True) as other:
        other.execute("select pg_advisory_lock(7301, %s)", (run_id,))  # what a run there holds
        status = cli("status", str(run_id))
        assert status.exit_code == 0 and "SUCCESS" in status.output, status.output
        out = cli("undo", str(run_id))
        assert out.exit_code == 0, out.output
    assert conn.execute("select status from loyverse.loyverse_import_runs where id = %s",
                        (run_id,)).fetchone()["status"] == "UNDONE"
