"""A small httpx client for the emulator's /_emulator admin endpoints, for tests and scripts.

with admin.AdminClient(emu.admin_url) as adm:
    adm.set_faults(merchant_id, fail_next=2, fail_next_kind="drop")
    adm.set_modes(merchant_id, stores_merge="replace")
    rows = adm.requests(since=0)
"""

# The methods return decoded JSON; mypy cannot see its shape.
# mypy: disable-error-code="no-any-return"

from __future__ import annotations

from typing import Any

import httpx


class AdminError(RuntimeError):
    """The admin endpoint refused the call (400/404)."""


class AdminClient:
    """Scripts faults, modes, tokens and reads logs/state of a running emulator."""

    def __init__(self, admin_url: str, *, timeout: float = 60.0) -> None:
        # generous: the state of a 10,000-item merchant is megabytes of JSON on a loaded box
        self.admin_url = admin_url.rstrip("/")
        self._http = httpx.Client(base_url=self.admin_url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(
        self,
        method: str,
        route: str,
        *,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
    ) -> Any:
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        response = self._http.request(method, f"/{route}", params=clean, json=json)
        if response.status_code >= 400:
            try:
                message = response.json().get("error", response.text)
            except ValueError:
                message = response.text
            raise AdminError(f"{method} /_emulator/{route}: {response.status_code} {message}")
        return response.json()

    # -- reads -------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return self._call("GET", "health")

    def merchants(self) -> list[dict[str, Any]]:
        """Each merchant: merchant_id, business_name, currency, tokens, store_ids."""
        return self._call("GET", "merchants")["merchants"]

    def requests(
        self, since: int = 0, merchant_id: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Request-log rows with id > since, oldest first."""
        return self._call(
            "GET", "requests", params={"since": since, "merchant_id": merchant_id, "limit": limit}
        )["requests"]

    def counters(self, merchant_id: str | None = None) -> dict[str, Any]:
        """{merchant_id: {"requests", "by_status", "rate_limited", "writes"}}."""
        return self._call("GET", "counters", params={"merchant_id": merchant_id})["merchants"]

    def state(self, merchant_id: str | None = None) -> dict[str, Any]:
        """{merchant_id: {"items", "categories", "modifiers", "taxes", "stores", ...}}."""
        return self._call("GET", "state", params={"merchant_id": merchant_id})["merchants"]

    def price_changes(self, since: int = 0, merchant_id: str | None = None) -> list[dict[str, Any]]:
        """Applied store-price changes: time, merchant_id, variant_id, store_id, old_price, new_price."""
        return self._call(
            "GET", "price-changes", params={"since": since, "merchant_id": merchant_id}
        )["price_changes"]

    def webhook_deliveries(self) -> list[dict[str, Any]]:
        return self._call("GET", "webhook-deliveries")["deliveries"]

    def faults(self, merchant_id: str | None = None) -> dict[str, Any]:
        return self._call("GET", "faults", params={"merchant_id": merchant_id})["merchants"]

    def modes(self, merchant_id: str | None = None) -> dict[str, Any]:
        return self._call("GET", "modes", params={"merchant_id": merchant_id})["merchants"]

    # -- writes ------------------------------------------------------------------------------

    def set_faults(
        self, merchant_id: str | None = None, *, clear: bool = False, **settings: Any
    ) -> dict[str, Any]:
        """e.g. set_faults(mid, p500=0.2, seed=1) or set_faults(mid, fail_next=1, fail_next_kind="drop")."""
        return self._call(
            "POST", "faults", json={"merchant_id": merchant_id, "clear": clear, **settings}
        )["faults"]

    def clear_faults(self, merchant_id: str | None = None) -> dict[str, Any]:
        return self.set_faults(merchant_id, clear=True)

    def set_modes(self, merchant_id: str | None = None, **modes: Any) -> dict[str, Any]:
        """e.g. set_modes(mid, stores_merge="replace", retry_after=2)."""
        return self._call("POST", "modes", json={"merchant_id": merchant_id, **modes})["modes"]

    def reset(
        self,
        *,
        log: bool = True,
        counters: bool = True,
        rate_limit: bool = True,
        price_changes: bool = True,
    ) -> None:
        self._call(
            "POST",
            "reset",
            json={
                "log": log,
                "counters": counters,
                "rate_limit": rate_limit,
                "price_changes": price_changes,
            },
        )

    def revoke_token(self, token: str) -> None:
        self._call("POST", "revoke-token", json={"token": token})

    def add_token(
        self,
        merchant_id: str | None = None,
        token: str | None = None,
        client_secret: str | None = None,
    ) -> str:
        """A new token for the merchant; with client_secret it acts as an OAuth app's token."""
        body: dict[str, Any] = {
            "merchant_id": merchant_id,
            "token": token,
            "client_secret": client_secret,
        }
        return self._call("POST", "tokens", json=body)["token"]

    def mark_oauth(self, token: str, client_secret: str) -> None:
        """Mark an existing token as an OAuth app's (webhooks it creates get signed)."""
        self._call("POST", "oauth-app", json={"token": token, "client_secret": client_secret})

    # -- back office (a person at the counter; emits webhooks, not in the API log) ------------

    def backoffice(self, action: str, merchant_id: str | None = None, **fields: Any) -> dict[str, Any]:
        return self._call("POST", "backoffice", json={"merchant_id": merchant_id, "action": action, **fields})

    def set_price(self, variant_id: str, store_id: str, price: float, merchant_id: str | None = None) -> dict[str, Any]:
        """Change one store price the way the back office does (items.update webhook)."""
        return self.backoffice("set_price", merchant_id, variant_id=variant_id, store_id=store_id, price=price)

    def set_prices(self, prices: list[dict[str, Any]], merchant_id: str | None = None) -> dict[str, Any]:
        """Many price changes at once: [{variant_id, store_id, price}, ...] (deliveries of <= 100 items)."""
        return self.backoffice("set_price", merchant_id, prices=prices)

    def rename_item(self, item_id: str, item_name: str, merchant_id: str | None = None) -> dict[str, Any]:
        return self.backoffice("rename_item", merchant_id, item_id=item_id, item_name=item_name)

    def delete_item(self, item_id: str, merchant_id: str | None = None) -> dict[str, Any]:
        return self.backoffice("delete_item", merchant_id, item_id=item_id)

    def sell(self, variant_id: str, store_id: str, quantity: float = 1, merchant_id: str | None = None) -> dict[str, Any]:
        """A sale at the counter: stock goes down (inventory_levels.update webhook)."""
        return self.backoffice("sell", merchant_id, variant_id=variant_id, store_id=store_id, quantity=quantity)

    def webhook_faults(self, *, flush: bool = False, **counts: int) -> dict[str, Any]:
        """Upcoming delivery faults: duplicate=N, drop=N, reorder=N (held back until the next one)."""
        return self._call("POST", "webhook-faults", json={"flush": flush, **counts})

    def save(self, path: str | None = None) -> str:
        return self._call("POST", "save", json={"path": path})["saved"]

    # -- OAuth apps (docs/emulator.md, "OAuth apps") ------------------------------------------

    def oauth(self) -> dict[str, Any]:
        """OAuth settings, counters (refreshes, rejected, reused, expired_401, lost) and apps."""
        return dict(self._call("GET", "oauth"))

    def set_oauth(self, **settings: Any) -> dict[str, Any]:
        """Set ``ttl_seconds`` (emulated), ``rotation`` ("strict"/"keep"), ``lose_next``."""
        return dict(self._call("POST", "oauth", json=settings))

    def create_oauth_app(self, merchant_id: str | None = None, **fields: Any) -> dict[str, Any]:
        """A new OAuth app of a merchant with its first token pair (client_id, client_secret,
        access_token, refresh_token, expires_in)."""
        return dict(self._call("POST", "oauth/apps", json={"merchant_id": merchant_id, **fields}))

    def advance_oauth_clock(self, seconds: float) -> dict[str, Any]:
        """Move the emulated OAuth clock forward: access tokens older than the TTL expire."""
        return dict(self._call("POST", "oauth/advance", json={"seconds": seconds}))
