"""The console in a real browser: Debian's chromium driven by playwright (never `playwright
install`: it downloads). The whole import wizard against the emulator, a settings change
and a validation error, a dead change retried, and a key refused another restaurant.
Screenshots go to $LOYVERSE_SYNC_SCREENSHOTS (docs/img when refreshing the docs) or tmp."""

from __future__ import annotations

import os
import pathlib
import re
from collections.abc import Iterator
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason=f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="the dev extra (playwright) is not installed")
    sync_playwright = sync_api.sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> pathlib.Path:
    target = os.environ.get("LOYVERSE_SYNC_SCREENSHOTS")
    path = pathlib.Path(target) if target else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def signed_in(browser: Any, stack: Any, who: str) -> Any:
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.set_default_timeout(60_000)
    page.goto(stack.base_url + "/console/login")
    page.fill("#api_key", stack.keys[who])
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/console/(r/[^/]+/)?$"))
    return page


def test_sign_in_refuses_a_revoked_key_and_says_so(browser, stack, shots):
    page = browser.new_page()
    page.goto(stack.base_url + "/console/login")
    page.fill("#api_key", stack.keys["revoked"])
    page.click("button[type=submit]")
    assert page.locator("#key-error").inner_text() == "Unknown or revoked API key."
    assert page.locator("#api_key").get_attribute("aria-invalid") == "true"
    page.goto(stack.base_url + f"/console/r/{stack.restaurants['A']}/")
    assert page.url.endswith("/console/login")  # not signed in: sent to sign in
    page.close()


def test_the_whole_import_wizard_then_undo(browser, stack, shots):
    a = stack.restaurants["A"]
    with stack.client("A") as c:
        preview = c.get("/api/integrations/loyverse/menu/preview").json()
    clash = preview["categories"][0]["items"][0]["variants"][0]["name"]
    with stack.conn() as conn:
        # one of our products has the name of a Loyverse variant: a conflict to decide
        conn.execute("insert into public.products (restaurant_id, name, price) values (%s, %s, 0.5)", (a, clash))
    page = signed_in(browser, stack, "A")
    page.click("text=Import menu")
    # 1. the menu tree with prices
    page.wait_for_selector("table.menu")
    assert page.locator("ol.steps li.current").inner_text() == "1. Menu"
    assert page.locator("table.menu tbody tr").count() > 0
    page.screenshot(path=str(shots / "console-import-1-menu.png"), full_page=False)
    page.click("#next")
    # 2. select: nothing selected is refused at the field
    page.click("#next")
    assert "Select at least one" in page.locator("#select-error").inner_text()
    categories = page.locator("input[name=category]")
    assert categories.count() >= 2
    categories.nth(0).check()
    categories.nth(1).check()
    chosen = {categories.nth(0).get_attribute("value"), categories.nth(1).get_attribute("value")}
    page.screenshot(path=str(shots / "console-import-2-select.png"))
    page.click("#next")
    # 3. conflicts side by side (whatever the selection holds), a choice per item
    assert page.locator("ol.steps li.current").inner_text() == "3. Conflicts"
    choices = page.locator("table.conflicts select")
    assert choices.count() >= 1, "our product named like a Loyverse variant is a conflict"
    assert clash in page.locator("table.conflicts").inner_text()
    for n in range(choices.count()):
        choices.nth(n).select_option("update")
    page.screenshot(path=str(shots / "console-import-3-conflicts.png"))
    page.click("#next")
    # 4. field mapping: a column the import owns is refused, with the reason
    page.select_option("select[name=map_field] >> nth=0", "item_name")
    page.fill("input[name=map_column] >> nth=0", "price")
    page.click("#next")
    assert "set by the import itself" in page.locator("#mapping-error").inner_text()
    page.select_option("select[name=map_field] >> nth=0", "")
    page.fill("input[name=map_column] >> nth=0", "")
    page.click("#next")
    # 5. summary with the fidelity report
    planned = int(page.locator("#plan-create").inner_text())
    updates = int(page.locator("#plan-update").inner_text())
    assert planned > 0 and updates >= 1
    page.screenshot(path=str(shots / "console-import-5-summary.png"), full_page=True)
    page.click("#start")
    # 6. progress (the page refreshes itself), then 7. results
    page.wait_for_selector("#progress")
    page.wait_for_selector("#created", timeout=120_000)
    assert page.locator("#run-status").inner_text() == "SUCCESS"
    assert int(page.locator("#created").inner_text()) == planned
    page.screenshot(path=str(shots / "console-import-7-results.png"), full_page=True)
    run_id = int(re.search(r"/runs/(\d+)", page.url).group(1))
    with stack.conn() as conn:
        rows = conn.execute(
            "select p.name, c.name as category from public.products p join loyverse.loyverse_item_mappings m"
            " on m.product_id = p.id left join public.categories c on c.id = p.category_id"
            " where p.restaurant_id = %s", (a,)).fetchall()
        log = conn.execute("select actor from loyverse.audit_trail where action = 'MENU_IMPORT' and restaurant_id = %s"
                           " order by log_id desc limit 1", (a,)).fetchone()
    assert len(rows) == planned + updates
    assert {r["category"] for r in rows} == chosen
    assert log["actor"] == f"console:{stack.key_names['A']}"
    # undo
    page.click("#undo")
    page.wait_for_selector("text=Undone")
    assert page.locator("#run-status").inner_text() == "UNDONE"
    with stack.conn() as conn:
        left = conn.execute("select count(*) as n from loyverse.loyverse_item_mappings m"
                            " join loyverse.loyverse_import_runs r on r.id = %s"
                            " where m.restaurant_id = %s", (run_id, a)).fetchone()["n"]
        ours = conn.execute("select price from public.products where restaurant_id = %s and name = %s",
                            (a, clash)).fetchall()
    assert left == 0
    assert [str(r["price"]) for r in ours] == ["0.50"]  # our own product, as it was before the run
    page.close()


def test_settings_change_and_a_validation_message_at_the_field(browser, stack, shots):
    a = stack.restaurants["A"]
    with stack.conn() as conn:
        conn.execute("insert into public.categories (restaurant_id, name) values (%s, 'Desserts'), (%s, 'Drinks')", (a, a))
    page = signed_in(browser, stack, "A")
    page.click("text=Settings")
    page.select_option("#sync_frequency", "BATCH_5MIN")
    page.check("input[name=exclude_categories][value=Desserts]")
    page.click("#save")
    page.wait_for_selector("text=Settings saved.")
    with stack.conn() as conn:
        s = conn.execute("select s.sync_frequency, array(select c.name from public.categories c"
                         " where c.id = any (s.exclude_category_ids)) as excluded"
                         " from loyverse.loyverse_price_sync_settings s where restaurant_id = %s", (a,)).fetchone()
        who = conn.execute("select actor from loyverse.audit_trail where action = 'SETTINGS_CHANGE'"
                           " and restaurant_id = %s order by log_id desc limit 1", (a,)).fetchone()
    assert (s["sync_frequency"], s["excluded"]) == ("BATCH_5MIN", ["Desserts"])
    assert who["actor"] == f"console:{stack.key_names['A']}"
    # a bad value: the message sits at its field and nothing is saved
    page.check("input[name=notify_on_error]")
    page.fill("#notification_email", "")
    page.fill("#max_attempts", "many")
    page.click("#save")
    assert page.locator("#max_attempts-error").inner_text() == "a whole number is needed"
    assert page.locator("#max_attempts").input_value() == "many"  # what was typed stays, to correct
    assert page.locator("#max_attempts").get_attribute("aria-invalid") == "true"
    page.screenshot(path=str(shots / "console-settings-error.png"), full_page=True)
    page.fill("#max_attempts", "8")
    page.click("#save")
    assert "notification_email" in page.locator("#notification_email-error").inner_text()
    with stack.conn() as conn:
        assert not conn.execute("select notify_on_error from loyverse.loyverse_price_sync_settings"
                                " where restaurant_id = %s", (a,)).fetchone()["notify_on_error"]
    page.close()


def test_dashboard_retries_a_dead_change(browser, stack, shots):
    b = stack.restaurants["B"]
    with stack.conn() as conn:
        conn.execute("update loyverse.loyverse_price_sync_settings set paused = true where restaurant_id = %s", (b,))
        pid = conn.execute("insert into public.products (restaurant_id, name, price) values (%s, 'Lemon tart', 4)"
                           " returning id", (b,)).fetchone()["id"]
        aid = conn.execute("select account_id from loyverse.loyverse_restaurant_links where restaurant_id = %s",
                           (b,)).fetchone()["account_id"]
        conn.execute("insert into loyverse.loyverse_item_mappings (product_id, restaurant_id, account_id, loyverse_item_id,"
                     " loyverse_variant_id, loyverse_store_id) values (%s, %s, %s, 'it-x', 'var-x', 'st')", (pid, b, aid))
        conn.execute("insert into loyverse.loyverse_price_sync_queue (product_id, restaurant_id, account_id, status,"
                     " new_price, price_to_send, attempts, last_error, completed_at, created_at)"
                     " values (%s, %s, %s, 'dead', 4, 4, 8, 'Loyverse kept answering 500', now(), now() - interval '20 minutes')",
                     (pid, b, aid))
    page = signed_in(browser, stack, "B")
    assert page.locator("#dead").inner_text() == "1"
    row = page.locator("#failed-items tr", has_text="Lemon tart")
    assert "Loyverse kept answering 500" in row.inner_text()
    assert page.locator("figure.chart svg polyline").count() == 1
    page.screenshot(path=str(shots / "console-dashboard.png"), full_page=True)
    row.get_by_role("button", name="Retry Lemon tart").click()
    page.wait_for_selector("text=1 change(s) queued again.")
    assert page.locator("#dead").inner_text() == "0"
    with stack.conn() as conn:
        statuses = [r["status"] for r in conn.execute(
            "select status from loyverse.loyverse_price_sync_queue where product_id = %s order by id", (pid,))]
        who = conn.execute("select actor from loyverse.audit_trail where action = 'RETRY' order by log_id desc"
                           " limit 1").fetchone()
    assert statuses == ["cancelled", "pending"]
    assert who["actor"] == f"console:{stack.key_names['B']}"
    # B's key does not reach A: the page refuses, and the form endpoints too
    page.goto(stack.base_url + f"/console/r/{stack.restaurants['A']}/settings")
    assert "may not reach" in page.content()
    page.close()


def test_guardrails_in_the_settings_form_and_a_held_change_approved_on_the_dashboard(browser, stack, shots):
    """The hold_* settings with their messages at the field; a held change shown by product
    name and approved with its button: it becomes pending (sent), audited as the console user."""
    b = stack.restaurants["B"]
    page = signed_in(browser, stack, "B")
    page.click("text=Settings")
    page.fill("#hold_change_percent", "0.5")
    page.fill("#hold_below_price", "abc")
    page.click("#save")
    assert "from 1 to 100000" in page.locator("#hold_change_percent-error").inner_text()
    assert "from 0 to 99999999" in page.locator("#hold_below_price-error").inner_text()
    assert page.locator("#hold_below_price").input_value() == "abc"  # what was typed stays, to correct
    page.fill("#hold_change_percent", "50")
    page.fill("#hold_change_amount", "")
    page.fill("#hold_below_price", "1.50")
    page.click("#save")
    page.wait_for_selector("text=Settings saved.")
    assert page.locator("#hold_change_percent").input_value() == "50"
    with stack.conn() as conn:
        s = conn.execute("select hold_change_percent, hold_change_amount, hold_below_price"
                         " from loyverse.loyverse_price_sync_settings where restaurant_id = %s", (b,)).fetchone()
        conn.execute("update loyverse.loyverse_price_sync_settings set paused = true where restaurant_id = %s", (b,))
        pid = conn.execute("insert into public.products (restaurant_id, name, price) values (%s, 'Carrot cake', 45)"
                           " returning id", (b,)).fetchone()["id"]
        aid = conn.execute("select account_id from loyverse.loyverse_restaurant_links where restaurant_id = %s",
                           (b,)).fetchone()["account_id"]
        conn.execute("insert into loyverse.loyverse_item_mappings (product_id, restaurant_id, account_id, loyverse_item_id,"
                     " loyverse_variant_id, loyverse_store_id) values (%s, %s, %s, 'it-cake', 'var-cake', 'st')",
                     (pid, b, aid))
        conn.execute("delete from loyverse.loyverse_price_sync_queue where product_id = %s", (pid,))
        conn.execute("insert into loyverse.loyverse_price_sync_queue (product_id, restaurant_id, account_id, status,"
                     " new_price, price_to_send, last_error_code, last_error, error_details)"
                     " values (%s, %s, %s, 'held', 45, 45, 'HELD_CHANGE_PERCENT',"
                     " 'held: 4.50 -> 45.00 moves the price by more than 50.00%% (hold_change_percent)',"
                     " '{\"loyverse_price\": 4.5}')", (pid, b, aid))
    assert (str(s["hold_change_percent"]), s["hold_change_amount"], str(s["hold_below_price"])) == ("50.00", None, "1.50")
    try:
        page.click("text=Dashboard")
        assert page.locator("#held").inner_text() == "1"
        row = page.locator("#held-items tr", has_text="Carrot cake")
        assert "4.5" in row.inner_text() and "hold_change_percent" in row.inner_text()
        assert str(pid) not in page.locator("#held-items").inner_text()  # by name, never by UUID
        page.screenshot(path=str(shots / "console-held.png"), full_page=True)
        row.get_by_role("button", name="Approve Carrot cake").click()
        page.wait_for_selector("text=1 held change(s) approved: sending.")
        assert page.locator("#held").inner_text() == "0"
        assert page.locator("#no-held").count() == 1
        with stack.conn() as conn:
            q = conn.execute("select status, approved_at from loyverse.loyverse_price_sync_queue where product_id = %s",
                             (pid,)).fetchall()
            who = conn.execute("select actor from loyverse.audit_trail where action = 'APPROVE' and restaurant_id = %s"
                               " order by log_id desc limit 1", (b,)).fetchone()
        assert [(r["status"], r["approved_at"] is not None) for r in q] == [("pending", True)]
        assert who["actor"] == f"console:{stack.key_names['B']}"
    finally:
        with stack.conn() as conn:
            conn.execute("update loyverse.loyverse_price_sync_settings set paused = false, hold_below_price = null,"
                         " hold_change_percent = 100 where restaurant_id = %s", (b,))
        page.close()
