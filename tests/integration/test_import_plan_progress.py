"""Planning an import reports progress while it runs (issue 17: menu/status moves at least
every second on a 10,000-item menu). import_plan sends a NOTICE per 1,000 items and per step
after them; runs.py writes each to the run row from its side connection. Checked on counts and
on the planning backend's clock (plan_at), never on elapsed time."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from loyverse_sync.importer import runs
from tests.support import importer as testing

TRAIL = """
create table public.plan_trail (n bigserial primary key, run_id bigint, stage text, done bigint, total bigint,
                                 at timestamptz, items_total integer);
create function public.tg_note_plan_progress() returns trigger language plpgsql as $$
begin
    if new.report ? 'plan_stage' and new.report is distinct from old.report then
        insert into public.plan_trail (run_id, stage, done, total, at, items_total)
        values (new.id, new.report ->> 'plan_stage', (new.report ->> 'plan_done')::bigint,
                (new.report ->> 'plan_total')::bigint, (new.report ->> 'plan_at')::timestamptz, new.items_total);
    end if;
    return new;
end $$;
create trigger _900_note_plan_progress after update on loyverse.loyverse_import_runs
    for each row execute function public.tg_note_plan_progress();
"""


def _menu(n_items: int, store_id: str) -> list[dict[str, Any]]:
    return [testing.item(f"it-{i:05d}", f"Dish {i:05d}", {"sku": f"S{i:05d}", "price": 2 + i % 7, "option1_value": "Small"},
                         {"sku": f"T{i:05d}", "price": 3 + i % 5, "option1_value": "Large"},
                         store_id=store_id, option1_name="Size")
            for i in range(n_items)]


@pytest.mark.parametrize("batch_size", [None, 1000], ids=["atomic", "batched"])
def test_planning_reports_every_thousand_items_then_every_step(
    dsn: str, connector: Any, conn: psycopg.Connection[Any], fernet_key: bytes, batch_size: int | None
) -> None:
    restaurant_id, account_id, store_id = testing.link_local(conn)
    snap = testing.stage(dsn, account_id, restaurant_id, store_id, items=_menu(2500, store_id))
    conn.execute(TRAIL)
    result = runs.run(connector, restaurant_id, snap, runs.Options(batch_size=batch_size))
    assert result["status"] == "SUCCESS" and result["created"] == 5000

    trail = conn.execute("select * from public.plan_trail where run_id = %s order by n", (result["run_id"],)).fetchall()
    items = [(r["done"], r["total"]) for r in trail if r["stage"] == "items"]
    steps = [(r["done"], r["total"]) for r in trail if r["stage"] == "steps"]
    # one update per 1,000 items (and one at 0), monotone, ending at the menu's items
    assert items == [(0, 2500), (1000, 2500), (2000, 2500), (2500, 2500)]
    # then each step after the items: 9 passes and the plan written 4,000 rows at a time
    total_steps = 9 + -(-5000 // 4000)
    assert steps == [(k, total_steps) for k in range(1, total_steps + 1)]
    assert [r["stage"] for r in trail] == ["items"] * 4 + ["steps"] * total_steps  # items first, never back
    # written while planning (before the write's items_total), stamped by the planning
    # backend's clock in order, after the run began
    assert all(r["items_total"] == 0 for r in trail)
    stamps = [r["at"] for r in trail]
    assert stamps == sorted(stamps)
    run = conn.execute("select started_at, clock_timestamp() as now from loyverse.loyverse_import_runs where id = %s",
                       (result["run_id"],)).fetchone()
    assert run["started_at"] <= stamps[0] and stamps[-1] <= run["now"]


def test_a_dry_run_and_a_preview_plan_without_writing_progress(
    dsn: str, connector: Any, conn: psycopg.Connection[Any], fernet_key: bytes
) -> None:
    """Progress goes only to a real run's row: a preview is rolled back and has no side connection."""
    restaurant_id, account_id, store_id = testing.link_local(conn)
    snap = testing.stage(dsn, account_id, restaurant_id, store_id, items=_menu(30, store_id))
    conn.execute(TRAIL)
    out = runs.preview(connector, restaurant_id, snap, runs.Options())
    assert out["summary"]["create"] == 60
    assert conn.execute("select count(*) as n from public.plan_trail").fetchone()["n"] == 0
    assert conn.execute("select count(*) as n from loyverse.loyverse_import_runs").fetchone()["n"] == 0


def test_import_plan_tells_a_psql_caller_how_far_it_is(dsn: str, conn: psycopg.Connection[Any], fernet_key: bytes) -> None:
    """The notices themselves, as psql shows them: JSON detail with the stage and counts."""
    import json

    restaurant_id, account_id, store_id = testing.link_local(conn)
    snap = testing.stage(dsn, account_id, restaurant_id, store_id, items=_menu(1200, store_id))
    run_id = conn.execute("insert into loyverse.loyverse_import_runs (restaurant_id, account_id, snapshot_id, status,"
                          " dry_run) values (%s, %s, %s, 'RUNNING', true) returning id",
                          (restaurant_id, account_id, snap)).fetchone()["id"]
    seen: list[dict[str, Any]] = []
    conn.add_notice_handler(lambda d: seen.append(json.loads(d.message_detail))
                            if (d.message_primary or "").startswith("import_plan progress:") else None)
    with conn.transaction(force_rollback=True):
        conn.execute("select loyverse.import_plan(%s)", (run_id,))
    assert [(p["stage"], p["done"]) for p in seen if p["stage"] == "items"] == [("items", 0), ("items", 1000),
                                                                                ("items", 1200)]
    assert seen[-1] == {**seen[-1], "stage": "steps", "done": seen[-1]["total"]} and seen[-1]["total"] == 10
    assert {p["run_id"] for p in seen} == {run_id}
