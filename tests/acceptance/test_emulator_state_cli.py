"""`emulator serve` given a state it cannot use: one `Error:` line naming the file and the
place in it, exit 2, never a KeyError traceback (issue #18: a variant without variant_id)."""

from __future__ import annotations

import json
import pathlib

from click.testing import CliRunner

from loyverse_emulator import server
from loyverse_sync.cli import emulator as emulator_cli


def _serve(*args: str) -> tuple[int, list[str]]:
    result = CliRunner().invoke(emulator_cli.emulator, ["serve", "--port", "0", *args])
    return result.exit_code, [line for line in result.output.splitlines() if line.strip()]


def test_a_saved_state_whose_variant_lacks_variant_id(tmp_path: pathlib.Path) -> None:
    good = tmp_path / "state.json"
    server.EmulatorServer(port=0, menu=3, seed=1, merchants=1, stores=1).state.save(str(good))
    doc = json.loads(good.read_text())
    del doc["merchants"][0]["collections"]["variants"][1][3]["variant_id"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    code, lines = _serve("--state", str(bad))
    assert code == 2
    assert lines == [f"Error: --state {bad}: merchants[0].collections.variants[1]: no variant_id (a non-empty string)"]
    (tmp_path / "trunc.json").write_text(good.read_text()[:100])
    code, lines = _serve("--state", str(tmp_path / "trunc.json"))
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"Error: --state {tmp_path / 'trunc.json'}: ")


def test_recorded_files_whose_variant_lacks_variant_id(tmp_path: pathlib.Path) -> None:
    items = tmp_path / "items__1.json"
    variant = {"sku": "1", "default_pricing_type": "FIXED", "default_price": 2,
               "stores": [{"store_id": "s1", "pricing_type": "FIXED", "price": 2, "available_for_sale": True}]}
    items.write_text(json.dumps({"items": [{"id": "i1", "item_name": "Tea", "variants": [variant]}]}))
    code, lines = _serve("--state-from", str(tmp_path))
    assert code == 2
    assert lines == [f"Error: --state-from {items}: items[0].variants[0]: no variant_id (a non-empty string)"]
    variant["variant_id"] = "v1"
    del variant["stores"][0]["store_id"]
    items.write_text(json.dumps({"items": [{"id": "i1", "item_name": "Tea", "variants": [variant]}]}))
    code, lines = _serve("--state-from", str(tmp_path))
    assert code == 2 and lines == [
        f"Error: --state-from {items}: items[0].variants[0].stores[0]: no store_id (a non-empty string)"
    ]
