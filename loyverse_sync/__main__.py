"""`python -m loyverse_sync` is the `loyverse-sync` command."""

from __future__ import annotations

from loyverse_sync.cli.main import main

main()
