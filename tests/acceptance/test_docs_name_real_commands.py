"""What the docs and deployment files tell a newcomer to run exists (issue #15: the systemd
env example named `loyverse-sync key`, the compose file a `cli` service it did not have).
No database: the click tree and the files only."""

from __future__ import annotations

import pathlib
import re

import click
import yaml

from loyverse_sync.cli import main

ROOT = pathlib.Path(__file__).resolve().parents[2]
COMMAND = re.compile(r"loyverse-sync((?: [a-z][a-z_-]*)+)")


def _code(path: pathlib.Path) -> list[str]:
    """Where commands are written: backtick spans and fenced blocks of Markdown; every line of
    other files."""
    text = path.read_text(encoding="utf-8")
    if path.suffix != ".md":
        return text.splitlines()
    fenced = re.findall(r"```.*?```", text, flags=re.S)
    inline = re.findall(r"`[^`\n]+`", re.sub(r"```.*?```", "", text, flags=re.S))
    return fenced + inline


def _unknown(snippet: str) -> list[str]:
    ctx = click.Context(main.cli)
    out = []
    for match in COMMAND.finditer(snippet):
        command: click.Command = main.cli
        path: list[str] = []
        for word in match.group(1).split():
            if not isinstance(command, click.Group):
                break
            sub = command.get_command(ctx, word)
            if sub is None:
                out.append(" ".join(["loyverse-sync", *path, word]))
                break
            path.append(word)
            command = sub
    return out


def test_every_command_the_docs_name_exists():
    files = [ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "docker-compose.yml", *sorted((ROOT / "docs").glob("*.md")),
             *sorted((ROOT / "systemd").iterdir())]
    seen = 0
    unknown = []
    for path in files:
        for snippet in _code(path):
            # prose, not a command: "the loyverse-sync price-sync worker"
            snippet = re.sub(r"loyverse-sync price", "", snippet)
            seen += len(COMMAND.findall(snippet))
            unknown += [f"{path.relative_to(ROOT)}: {u}" for u in _unknown(snippet)]
    assert seen > 20  # the scan found the commands it is meant to check
    assert unknown == []


def test_compose_has_the_cli_service_and_leaves_5432_alone():
    path = ROOT / "docker-compose.yml"
    compose = yaml.safe_load(path.read_text(encoding="utf-8"))
    services = compose["services"]
    assert "run --rm cli" in path.read_text(encoding="utf-8")
    assert "cli" in services and services["cli"].get("profiles") == ["cli"]  # not started by `up`
    assert services["cli"]["image"] == services["worker"]["image"]
    published = []
    for service in services.values():
        for port in service.get("ports", []):
            host = re.sub(r"\$\{[A-Z_]+:-([0-9]+)\}", r"\1", str(port)).split(":")
            published.append(int(host[-2]))
    assert published and 5432 not in published
