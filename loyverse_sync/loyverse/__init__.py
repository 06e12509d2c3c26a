"""The Loyverse API client: typed errors, safe retries, and a shared rate governor.

``client.LoyverseClient`` talks to one account; ``governor.PostgresGovernor`` shares that
account's rate budget across processes; ``errors`` holds the exceptions. See docs/client.md.
"""

from __future__ import annotations

from loyverse_sync.loyverse import client, errors, governor
from loyverse_sync.loyverse.client import LoyverseClient, RequestRecord
from loyverse_sync.loyverse.errors import LoyverseError
from loyverse_sync.loyverse.governor import Governor, PostgresGovernor

__all__ = [
    "Governor",
    "LoyverseClient",
    "LoyverseError",
    "PostgresGovernor",
    "RequestRecord",
    "client",
    "errors",
    "governor",
]
