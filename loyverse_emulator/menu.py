"""Deterministic, realistic restaurant menus for the emulator.

`generate()` returns Loyverse-shaped objects (the same JSON the API answers) from a seed:
categories, taxes (duplicate names, a 0 % rate, INCLUDED and ADDED), modifiers shared across
items (one not sold in every store), items with 1-4 variants and option names, store-specific
prices, VARIABLE defaults with FIXED store prices, unavailable store entries, soft-deleted
items, items without the `description` key (as in 2021-22 payloads), non-ASCII names and
sequential SKUs from 10000. 10,000 items take well under 2 s.
"""

from __future__ import annotations

import datetime
import random
from typing import Any

from loyverse_emulator import state as st

BASE_MS = int(datetime.datetime(2023, 1, 2, 9, 0, tzinfo=datetime.UTC).timestamp() * 1000)

# category name, colour, dishes (name, price in EUR), option sets, modifier names
_CATALOGUE: list[tuple[str, str, list[tuple[str, float]], list[list[tuple[str, list[str]]]], list[str]]] = [
    (
        "Hot drinks", "ORANGE",
        [("Espresso", 2.2), ("Cappuccino", 3.4), ("Café au lait", 3.2), ("Flat white", 3.6), ("Chai latte", 3.9),
         ("Thé vert", 2.8), ("Hot chocolate", 3.5), ("Matcha latte ☕", 4.2), ("Cortado", 3.0), ("Glühwein", 4.5)],
        [[("Size", ["Small", "Medium", "Large"])], [("Size", ["Regular", "Large"])], []],
        ["Milk", "Syrup"],
    ),
    (
        "Cold drinks", "BLUE",
        [("Iced tea", 3.0), ("Limonade maison", 3.5), ("Cola", 2.5), ("Orange juice", 3.8), ("Smoothie açaí", 5.5),
         ("Sparkling water", 2.0), ("Kombucha", 4.0), ("Iced latte", 4.1)],
        [[("Size", ["0.33 l", "0.5 l"])], [("Size", ["Small", "Medium", "Large"])], []],
        ["Syrup"],
    ),
    (
        "Breakfast", "GREEN",
        [("Croissant", 1.9), ("Pain au chocolat", 2.1), ("Eggs Benedict", 9.5), ("Granola bowl", 6.5),
         ("Avocado toast", 8.9), ("Crêpe Suzette", 7.2), ("Shakshuka", 10.5), ("Smørrebrød", 9.9)],
        [[], [], [("Portion", ["Half", "Full"])]],
        ["Extras"],
    ),
    (
        "Burgers", "RED",
        [("Classic burger", 11.5), ("Cheeseburger", 12.5), ("Veggie burger", 11.9), ("Jalapeño burger", 13.0),
         ("Chicken burger", 12.0), ("Bacon double", 14.5)],
        [[("Doneness", ["Medium", "Well done"])], [], [("Size", ["Single", "Double"]), ("Bread", ["Brioche", "Whole wheat"])]],
        ["Extras", "Sauce"],
    ),
    (
        "Pizza", "PURPLE",
        [("Margherita", 9.5), ("Quattro formaggi", 12.5), ("Diavola", 11.5), ("Funghi", 10.5), ("Prosciutto e rucola", 13.5),
         ("Flammkuchen", 10.9)],
        [[("Size", ["25 cm", "30 cm", "35 cm"])], [("Size", ["Small", "Large"]), ("Crust", ["Classic", "Thin"])]],
        ["Toppings"],
    ),
    (
        "Asian", "PINK",
        [("Ramen 拉麺", 13.5), ("Pad thai", 12.0), ("Bún chả", 12.5), ("Gyoza 餃子", 6.5), ("Bibimbap 비빔밥", 13.0),
         ("Phở bò", 12.9), ("Katsu curry", 13.9)],
        [[("Spice", ["Mild", "Hot"])], [], [("Size", ["Regular", "Large"])]],
        ["Spice level"],
    ),
    (
        "Salads", "GREEN",
        [("Caesar salad", 10.5), ("Niçoise salad", 11.5), ("Greek salad", 9.5), ("Quinoa bowl", 10.9)],
        [[], [("Size", ["Starter", "Main"])]],
        ["Extras"],
    ),
    (
        "Desserts", "PINK",
        [("Crème brûlée", 6.5), ("Tiramisù", 6.9), ("Cheesecake", 6.2), ("Apfelstrudel", 5.9), ("Mochi", 4.5),
         ("Churros", 5.0)],
        [[], [("Portion", ["Single", "To share"])]],
        [],
    ),
    (
        "Sides", "GREY",
        [("French fries", 3.9), ("Sweet potato fries", 4.5), ("Onion rings", 4.2), ("Side salad", 3.5), ("Edamame", 4.0)],
        [[("Size", ["Regular", "Large"])], []],
        ["Sauce"],
    ),
]  # fmt: skip

_ADJECTIVES = [
    "Spicy", "Homemade", "Vegan", "Classic", "Grilled", "Smoked", "Crispy", "Truffle", "Seasonal", "Chef's",
    "Mini", "Deluxe", "Garden", "Rustic", "Royal", "Golden", "Wild", "Urban", "Nordic", "Provençal",
    "Zesty", "Velvet", "Midnight", "Sunny", "Brûlé",
]  # fmt: skip

_MODIFIERS: dict[str, list[tuple[str, float]]] = {
    "Milk": [("Whole milk", 0), ("Oat milk", 0.5), ("Soy milk", 0.5), ("Lactose-free", 0.3)],
    "Syrup": [("Vanille", 0.4), ("Caramel", 0.4), ("Noisette", 0.4)],
    "Extras": [("Bacon", 1.5), ("Cheese", 1.0), ("Jalapeños", 0.8), ("Fried egg", 1.2)],
    "Sauce": [("Ketchup", 0), ("Mayo", 0), ("Sriracha", 0.3), ("Aïoli", 0.5)],
    "Toppings": [
        ("Mushrooms", 1.0),
        ("Olives", 0.8),
        ("Extra mozzarella", 1.5),
        ("Prosciutto", 2.0),
    ],
    "Spice level": [("Mild", 0), ("Hot", 0), ("Extra hot", 0.2)],
}

# name, type, rate: duplicate "VAT" names and a 0 rate, as seen live.
_TAXES = [
    ("VAT", "INCLUDED", 10.0),
    ("VAT", "INCLUDED", 20.0),
    ("Service charge", "ADDED", 5.0),
    ("Zero rated", "INCLUDED", 0.0),
]

_STORE_NAMES = [
    "Main street",
    "Gare du Nord",
    "Airport T2",
    "Harbour",
    "Old town",
    "Campus",
    "Mall",
    "Riverside",
]


def _uuid(rng: random.Random) -> str:
    """A random (version 4) UUID drawn from `rng`, so menus are reproducible."""
    n = (rng.getrandbits(128) & _UUID_MASK) | _UUID_BITS
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# version 4 in bits 76-79, RFC 4122 variant in bits 62-63
_UUID_MASK = ~((0xF << 76) | (0x3 << 62)) & ((1 << 128) - 1)
_UUID_BITS = (0x4 << 76) | (0x2 << 62)


def make_stores(
    count: int, *, seed: int = 0, country_code: str = "FR", created_ms: int = BASE_MS
) -> list[dict[str, Any]]:
    """Loyverse store objects (live shape: `region`, `country_code`)."""
    rng = random.Random(f"stores-{seed}")
    stores = []
    for index in range(count):
        stamp = st.iso_from_ms(created_ms - (count - index) * 86_400_000)
        name = _STORE_NAMES[index % len(_STORE_NAMES)] + (
            "" if index < len(_STORE_NAMES) else f" {index + 1}"
        )
        stores.append(
            {
                "id": _uuid(rng),
                "name": name,
                "address": f"{index + 1} {name}",
                "city": "Lyon"
                if country_code == "FR"
                else "Tokyo"
                if country_code == "JP"
                else "Springfield",
                "region": None,
                "postal_code": f"{69001 + index}",
                "country_code": country_code,
                "phone_number": None,
                "description": None,
                "created_at": stamp,
                "updated_at": stamp,
                "deleted_at": None,
            }
        )
    return stores


def _price(eur: float, decimal_places: int) -> Any:
    if decimal_places == 0:  # yen-like: x150, rounded to 10
        return int(round(eur * 150 / 10.0) * 10)
    return st.money(round(eur * 20) / 20, decimal_places)  # EUR-like: 5-cent steps


def generate(
    n_items: int,
    store_ids: list[str],
    *,
    seed: int = 0,
    decimal_places: int = 2,
    base_ms: int = BASE_MS,
    rich: bool = False,
) -> dict[str, list[dict[str, Any]]]:
    """A menu of `n_items` items for these stores, in Loyverse's response shapes.

    `rich=True` also fills what the default menu leaves at its create defaults (see
    `_enrich`): composite items, sold by weight, two taxes, suppliers, reference ids,
    purchase costs, more barcodes, stock levels. It draws from its own RNG, so the items,
    variants and prices are the same as without it."""
    rng = random.Random(seed)
    base_stamp = st.iso_from_ms(base_ms)
    n_stores = len(store_ids)

    def obj_base(ms: int) -> dict[str, Any]:
        stamp = st.iso_from_ms(ms)
        return {"created_at": stamp, "updated_at": stamp, "deleted_at": None}

    categories = []
    for index, (name, color, *_rest) in enumerate(_CATALOGUE):
        ms = base_ms + index * 1000
        categories.append(
            {
                "id": _uuid(rng),
                "name": name,
                "color": color,
                "created_at": st.iso_from_ms(ms),
                "deleted_at": None,
            }
        )
    taxes = [
        {
            "id": _uuid(rng),
            "name": name,
            "type": kind,
            "rate": rate,
            "stores": list(store_ids),
            **obj_base(base_ms + i * 1000),
        }
        for i, (name, kind, rate) in enumerate(_TAXES)
    ]
    modifiers = []
    modifier_ids: dict[str, str] = {}
    for index, (name, options) in enumerate(_MODIFIERS.items()):
        ms = base_ms + index * 1000
        # "Toppings" is not sold in the last store (when there is more than one).
        stores = list(store_ids[:-1]) if name == "Toppings" and n_stores > 1 else list(store_ids)
        mid = _uuid(rng)
        modifier_ids[name] = mid
        modifiers.append(
            {
                "id": mid,
                "name": name,
                "position": index,
                "stores": stores,
                "modifier_options": [
                    {
                        "id": _uuid(rng),
                        "name": opt,
                        "price": _price(price, decimal_places) if price else 0,
                        "position": pos,
                        **obj_base(ms),
                    }
                    for pos, (opt, price) in enumerate(options)
                ],
                **obj_base(ms),
            }
        )

    dishes = [(ci, dish) for ci, entry in enumerate(_CATALOGUE) for dish in entry[2]]
    names: list[tuple[int, str, float]] = [(ci, name, price) for ci, (name, price) in dishes]
    extra = [
        (ci, f"{adj} {name[0].lower() + name[1:]}", price * 1.15)
        for adj in _ADJECTIVES
        for ci, (name, price) in dishes
    ]
    rng.shuffle(extra)
    names += extra
    rng.shuffle(names)
    pool_size = len(names)

    items: list[dict[str, Any]] = []
    inventory: list[dict[str, Any]] = []
    sku = 10000
    step_ms = 37 * 60_000
    for index in range(n_items):
        ci, name, eur = names[index % pool_size]
        if index >= pool_size:
            name = f"{name} #{index // pool_size + 1}"
        cat_name, _color, _dishes, option_sets, mod_names = _CATALOGUE[ci]
        created_ms = base_ms + 86_400_000 + index * step_ms + rng.randrange(60) * 1000
        updated_ms = created_ms + (rng.randrange(30 * 86_400) * 1000 if rng.random() < 0.3 else 0)
        created_stamp, updated_stamp = st.iso_from_ms(created_ms), st.iso_from_ms(updated_ms)
        item_id = _uuid(rng)
        opt_set = rng.choice(option_sets)
        combos: list[list[str]] = [[]]
        for _opt_name, choices in opt_set:
            combos = [[*c, v] for c in combos for v in choices]
        combos = combos[:4]
        deleted = rng.random() < 0.03
        deleted_stamp = updated_stamp if deleted else None
        track = rng.random() < 0.4
        pricing_roll = rng.random()
        variants = []
        for vi, combo in enumerate(combos):
            price = _price(eur + vi * 0.5, decimal_places)
            opt_values: list[str | None] = [*combo, None, None, None][:3]
            if pricing_roll < 0.02:  # price entered at the till everywhere
                dpt, dprice = "VARIABLE", None
                entries = [("VARIABLE", None) for _ in store_ids]
            elif pricing_roll < 0.12:  # VARIABLE default, FIXED per-store prices (as live)
                dpt, dprice = "VARIABLE", None
                entries = [
                    ("FIXED", _price(eur + vi * 0.5 + si * 0.3, decimal_places))
                    for si in range(n_stores)
                ]
            else:
                dpt, dprice = "FIXED", price
                specific = rng.random() < 0.25
                entries = [
                    (
                        "FIXED",
                        _price(
                            (eur + vi * 0.5) * (1.1 if specific and si else 1.0), decimal_places
                        ),
                    )
                    for si in range(n_stores)
                ]
            store_entries = []
            for si, (ptype, sprice) in enumerate(entries):
                store_entries.append(
                    {
                        "store_id": store_ids[si],
                        "pricing_type": ptype,
                        "price": sprice,
                        "available_for_sale": not (si and rng.random() < 0.05),
                        "optimal_stock": None,
                        "low_stock": 5 if track and rng.random() < 0.3 else None,
                    }
                )
            variant_id = _uuid(rng)
            variants.append(
                {
                    "variant_id": variant_id,
                    "item_id": item_id,
                    "sku": str(sku),
                    "reference_variant_id": None,
                    "option1_value": opt_values[0],
                    "option2_value": opt_values[1],
                    "option3_value": opt_values[2],
                    "barcode": str(4006381000000 + sku) if rng.random() < 0.2 else None,
                    "cost": _price(eur * 0.3, decimal_places) if rng.random() < 0.5 else 0,
                    "purchase_cost": None,
                    "default_pricing_type": dpt,
                    "default_price": dprice,
                    "stores": store_entries,
                    "created_at": created_stamp,
                    "updated_at": updated_stamp,
                    "deleted_at": deleted_stamp,
                }
            )
            sku += 1
            if track and not deleted:
                for store_id in store_ids:
                    inventory.append(
                        {
                            "variant_id": variant_id,
                            "store_id": store_id,
                            "in_stock": rng.randrange(-5, 80),
                            "updated_at": updated_stamp,
                        }
                    )
        option_names: list[str | None] = [*(n for n, _choices in opt_set), None, None, None]
        item: dict[str, Any] = {
            "id": item_id,
            "handle": name.lower().replace(" ", "-"),
            "reference_id": None,
            "item_name": name[:64],
        }
        roll = rng.random()
        if roll >= 0.3:  # ~30 % are "old" items without the description key at all
            item["description"] = f"<p>{name}, house recipe.</p>" if roll >= 0.65 else None
        item.update(
            {
                "track_stock": track,
                "sold_by_weight": False,
                "is_composite": False,
                "use_production": False,
                "category_id": categories[ci]["id"] if rng.random() > 0.03 else None,
                "components": [],
                "primary_supplier_id": None,
                "tax_ids": [
                    taxes[0]["id"]
                    if rng.random() < 0.6
                    else taxes[rng.randrange(1, len(taxes))]["id"]
                ],
                "modifier_ids": [modifier_ids[mn] for mn in mod_names if rng.random() < 0.8],
                "form": rng.choice(("SQUARE", "SQUARE", "CIRCLE", "SUN", "OCTAGON")),
                "color": rng.choice(
                    ("GREY", "RED", "PINK", "ORANGE", "YELLOW", "GREEN", "BLUE", "PURPLE")
                ),
                "image_url": f"https://api.loyverse.com/image/{item_id}"
                if rng.random() < 0.3
                else None,
                "option1_name": option_names[0],
                "option2_name": option_names[1],
                "option3_name": option_names[2],
                "created_at": created_stamp,
                "updated_at": updated_stamp,
                "deleted_at": deleted_stamp,
                "variants": variants,
            }
        )
        del cat_name
        items.append(item)
    del base_stamp
    if rich:
        _enrich(items, taxes, random.Random(f"rich-{seed}"), decimal_places)
    return {
        "categories": categories,
        "taxes": taxes,
        "modifiers": modifiers,
        "items": items,
        "inventory_levels": inventory,
    }


def _enrich(
    items: list[dict[str, Any]],
    taxes: list[dict[str, Any]],
    rng: random.Random,
    decimal_places: int,
) -> None:
    """Set the writable fields a plain menu leaves at their create defaults, so a write that
    drops any of them (the whole-object reading of a POST resets them) shows."""
    supplier = _uuid(rng)
    live = [i for i in items if not i.get("deleted_at")]
    for index, item in enumerate(live):
        variants = item["variants"]
        if rng.random() < 0.2:
            item["reference_id"] = f"REF-{index:05d}"
        if rng.random() < 0.15:
            item["primary_supplier_id"] = supplier
        if rng.random() < 0.25 and len(taxes) > 2 and taxes[2]["id"] not in item["tax_ids"]:
            item["tax_ids"] = [*item["tax_ids"], taxes[2]["id"]]
        if len(variants) == 1 and not item["option1_name"] and rng.random() < 0.08:
            item["sold_by_weight"] = True
        # composite: made of variants of earlier items (Loyverse: components + use_production)
        if index >= 5 and rng.random() < 0.1:
            parts = rng.sample(live[:index], k=min(index, rng.randint(1, 3)))
            item["is_composite"] = True
            item["use_production"] = rng.random() < 0.5
            item["components"] = [
                {"variant_id": p["variants"][0]["variant_id"], "quantity": rng.choice((1, 2, 0.5))}
                for p in parts
            ]
        for variant in variants:
            cost = variant["cost"] or 0
            if rng.random() < 0.4:
                variant["purchase_cost"] = st.money(
                    (cost or 1) * rng.choice((0.8, 0.9, 1.0)), decimal_places
                )
            if rng.random() < 0.15:
                variant["reference_variant_id"] = f"RV-{variant['sku']}"
            if variant["barcode"] is None and rng.random() < 0.3:
                variant["barcode"] = f"20{int(variant['sku']):011d}"
            for entry in variant["stores"]:
                if item["track_stock"] and rng.random() < 0.5:
                    entry["low_stock"] = entry["low_stock"] or 3
                    entry["optimal_stock"] = 20


def load_into(merchant: st.Merchant, menu: dict[str, list[dict[str, Any]]]) -> None:
    """Store a menu (API shapes) as a merchant's objects; items keep their variants apart."""
    for kind in ("stores", "categories", "taxes", "modifiers"):
        for data in menu.get(kind, ()):
            merchant.add(
                kind,
                data["id"],
                data,
                created_ms=_created_ms(data),
                updated_ms=_updated_ms(data),
            )
    max_sku = merchant.next_sku - 1
    for item in menu.get("items", ()):
        variants = item.get("variants") or []
        data = dict(item)
        data["variants"] = None  # placeholder keeps the key's position
        vids = []
        for variant in variants:
            vid = variant["variant_id"]
            if vid in merchant.collections["variants"]:
                continue  # duplicated in a pasted payload
            merchant.add(
                "variants",
                vid,
                variant,
                created_ms=_created_ms(variant),
                updated_ms=_updated_ms(variant),
            )
            vids.append(vid)
            sku = str(variant.get("sku") or "")
            if sku.isdigit():
                max_sku = max(max_sku, int(sku))
        if item["id"] in merchant.collections["items"]:
            continue
        merchant.add(
            "items",
            item["id"],
            data,
            created_ms=_created_ms(item),
            updated_ms=_updated_ms(item),
            extra={"variant_ids": vids},
        )
    merchant.next_sku = max_sku + 1
    for level in menu.get("inventory_levels", ()):
        ms = _updated_ms(level)
        merchant.add(
            "inventory",
            (level["variant_id"], level["store_id"]),
            level,
            created_ms=ms,
            updated_ms=ms,
        )


def _created_ms(data: dict[str, Any]) -> int:
    try:
        return st.ms_from_iso(data["created_at"])
    except (KeyError, TypeError, ValueError):
        return BASE_MS


def _updated_ms(data: dict[str, Any]) -> int:
    try:
        return st.ms_from_iso(data.get("updated_at") or data["created_at"])
    except (KeyError, TypeError, ValueError):
        return BASE_MS
