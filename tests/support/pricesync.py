"""Price-sync seeding for the tests: a catalogue in sync with an emulator merchant.

The benchmarks seed the same way, so the code lives in bench/rig.py; this module keeps the
tests' import (`from tests.support import pricesync as testing`).
"""

from __future__ import annotations

from bench.rig import VARIABLE_REASON, Seed, db_prices, loyverse_prices, seed_from_emulator

__all__ = ["VARIABLE_REASON", "Seed", "db_prices", "loyverse_prices", "seed_from_emulator"]
