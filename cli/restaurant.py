"""`loyverse-sync restaurant ...`: add, list, link to a Loyverse store, and which database roles
of the main app may read which restaurants (grant-role, revoke-role, roles)."""

from __future__ import annotations

import click
import psycopg

from loyverse_sync import accounts, queries
from loyverse_sync.cli import _common


@click.group("restaurant")
def restaurant() -> None:
    """Restaurants of the main app and their Loyverse store."""


@restaurant.command("add")
@click.option("--name", type=_common.Name(), required=True, help="The restaurant's name.")
def add(name: str) -> None:
    """Create a restaurant (for set-ups where the main app does not create them yet)."""
    with _common.connection() as conn:
        try:
            restaurant_id = accounts.add_restaurant(conn, name)
        except psycopg.errors.CheckViolation as exc:
            raise _common.UsageProblem(f"invalid --name: {exc.diag.constraint_name}") from None
    click.echo(f"restaurant {name!r} added: {restaurant_id}")


@restaurant.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_(as_json: bool) -> None:
    """List restaurants with their Loyverse link and product counts."""
    with _common.connection() as conn:
        rows = accounts.list_restaurants(conn)
    if as_json:
        _common.echo_json(rows)
    else:
        _common.echo_table(
            rows, empty="no restaurants yet: `loyverse-sync restaurant add --name ...`"
        )


@restaurant.command("link")
@click.argument("restaurant_ref", metavar="RESTAURANT")
@click.option(
    "--account", "account_ref", type=_common.AccountRef(), required=True, help="Account id or name."
)
@click.option("--store", "store_id", required=True, help="Loyverse store id.")
@click.option("--no-check", is_flag=True, help="Do not check the store exists in Loyverse.")
def link(restaurant_ref: str, account_ref: str, store_id: str, no_check: bool) -> None:
    """Link RESTAURANT (id or name) to a Loyverse account's store."""
    with _common.connection() as conn:
        restaurant_id = accounts.resolve_restaurant_id(conn, restaurant_ref)
        account_id = accounts.resolve_account_id(conn, account_ref)
        store_name = None
        if not no_check:
            account_obj = accounts.get_account(conn, account_id)
            from loyverse_sync import oauth

            with oauth.client_for(account_obj, _common.connector(), connection=conn) as lv:
                stores = {s["id"]: s for s in lv.list_stores()}
            if store_id not in stores:
                known = ", ".join(f"{s['id']} ({s.get('name')})" for s in stores.values()) or "none"
                raise click.BadParameter(
                    f"store {store_id} is not in account {account_obj.name}; its stores: {known}",
                    param_hint="--store",
                )
            store_name = stores[store_id].get("name")
        try:
            accounts.link_restaurant(conn, restaurant_id, account_id, store_id, store_name)
        except psycopg.errors.UniqueViolation:
            raise _common.UsageProblem(
                f"store {store_id} is already linked to another restaurant of this account"
            ) from None
    click.echo(f"restaurant {restaurant_ref} linked to account {account_ref}, store {store_id}")


def _role_call(query: str, role: str, restaurant_id: str | None) -> object:
    """One of the role functions; its refusals (they name the field) as usage errors."""
    with _common.connection() as conn:
        try:
            row = queries.execute(conn, "accounts", query, {"role": role, "restaurant_id": restaurant_id}).fetchone()
        except (psycopg.errors.InvalidParameterValue, psycopg.errors.NoDataFound) as exc:
            raise _common.UsageProblem(exc.diag.message_primary or str(exc)) from None
    assert row is not None
    return next(iter(row.values()))


@restaurant.command("grant-role")
@click.argument("restaurant_ref", metavar="RESTAURANT")
@click.option("--role", required=True, help="A database role of the main app (a member of loyverse_app).")
def grant_role(restaurant_ref: str, role: str) -> None:
    """Let ROLE read RESTAURANT (id or name) in the status and history views.

    A member of loyverse_app reads only the restaurants granted to it or to a role it belongs
    to; the operators' roles read every restaurant."""
    with _common.connection() as conn:
        restaurant_id = accounts.resolve_restaurant_id(conn, restaurant_ref)
    granted = _role_call("grant_restaurant_to_role", role, restaurant_id)
    click.echo(f"role {role} reads restaurant {restaurant_ref}" + ("" if granted else " (already did)"))


@restaurant.command("revoke-role")
@click.argument("restaurant_ref", metavar="RESTAURANT", required=False)
@click.option("--role", required=True, help="The database role.")
@click.option("--all", "all_", is_flag=True, help="Every restaurant granted to the role.")
def revoke_role(restaurant_ref: str | None, role: str, all_: bool) -> None:
    """Take back RESTAURANT (or --all) from ROLE: it no longer reads it in the status and history views."""
    if (restaurant_ref is None) == (not all_):
        raise click.UsageError("give a RESTAURANT or --all (not both)")
    restaurant_id = None
    if restaurant_ref is not None:
        with _common.connection() as conn:
            restaurant_id = accounts.resolve_restaurant_id(conn, restaurant_ref)
    revoked = _role_call("revoke_restaurant_from_role", role, restaurant_id)
    click.echo(f"{revoked} grant(s) taken back from role {role}")


@restaurant.command("roles")
@click.option("--role", default=None, help="Only this database role.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def roles(role: str | None, as_json: bool) -> None:
    """Which database role of the main app reads which restaurant."""
    with _common.connection() as conn:
        found = [dict(r) for r in queries.execute(conn, "accounts", "restaurant_roles", {"role": role})]
    if as_json:
        _common.echo_json(found)
    else:
        _common.echo_table(found, empty="no role is granted a restaurant: `loyverse-sync restaurant grant-role`")
