"""loyverse-sync: menu import from and price sync to the Loyverse POS, database-first."""

from __future__ import annotations

__version__ = "0.1.0"
