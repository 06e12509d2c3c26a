"""Who is acting: the session setting ``loyverse.actor`` that the SQL functions read.

Every loyverse_sync_logs row takes its ``actor`` column from ``loyverse.current_actor()``
(sql/0095): the setting when a client set it, else ``sql:<session user>``. The CLI sets it
for its whole process through libpq's PGOPTIONS (``cli:<os user>``); the server sets it per
request (``api-key:<name>``, ``console:<key name>``); the worker's import job connects with
the actor that requested the import.
"""

from __future__ import annotations

import getpass
import os
import re

_SAFE = re.compile(r"[^\w.:@+=/-]")
_ACTOR_OPTION = re.compile(r"-c\s*loyverse\.actor=\S*")


def os_user() -> str:
    """The operating-system user running this process."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid{os.getuid()}"


def clean(actor: str) -> str:
    """An actor label libpq's options and logs carry safely (no spaces or quotes), 200 chars at most."""
    return _SAFE.sub("_", actor)[:200]


def option(actor: str) -> str:
    """The libpq ``options`` fragment that sets loyverse.actor for a connection."""
    return f"-c loyverse.actor={clean(actor)}"


def use_for_process(actor: str) -> None:
    """Every libpq connection this process (and its children) opens acts as ``actor``."""
    current = os.environ.get("PGOPTIONS", "")
    current = " ".join(_ACTOR_OPTION.sub("", current).split())
    os.environ["PGOPTIONS"] = f"{current} {option(actor)}".strip()
