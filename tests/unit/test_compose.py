"""docker-compose.yml is checked here, since Docker cannot run on our machines."""

from __future__ import annotations

import pathlib

import yaml

from loyverse_sync.cli import main

ROOT = pathlib.Path(__file__).parents[2]


def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_db_is_postgres_15_with_a_volume_and_a_healthcheck():
    db = compose()["services"]["db"]
    assert db["image"] == "postgres:15"
    assert any(v.endswith(":/var/lib/postgresql/data") for v in db["volumes"])
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert "pgdata" in compose()["volumes"]


def test_migrate_is_one_shot_after_a_healthy_db_and_runs_a_real_command():
    migrate = compose()["services"]["migrate"]
    assert migrate["command"] == ["db", "migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["db"]["condition"] == "service_healthy"


def test_every_service_command_is_a_command_of_the_cli():
    import click

    for name, service in compose()["services"].items():
        if "command" not in service or service.get("image", "").startswith("postgres"):
            continue
        command = service["command"]
        ctx = click.Context(main.cli)
        group: click.Command | None = main.cli
        for word in command:
            if word.startswith("-") or not isinstance(group, click.Group):
                break
            group = group.get_command(ctx, word)
            assert group is not None, f"service {name}: {command} is not a loyverse-sync command"


def test_app_services_share_the_image_and_know_the_database():
    for name, service in compose()["services"].items():
        if name == "db":
            continue
        assert service["image"] == "loyverse-sync:local"
        assert service["environment"]["DATABASE_URL"].startswith("postgresql://")


def test_the_dockerfile_installs_the_package_with_its_migrations():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for folder in ("migrations", "sql", "cli", "worker", "loyverse_sync"):
        assert f"COPY {folder} ./{folder}" in dockerfile
    assert 'ENTRYPOINT ["loyverse-sync"]' in dockerfile


def test_worker_runs_after_migrations_with_a_grace_period_longer_than_its_own():
    worker = compose()["services"]["worker"]
    assert worker["command"][0] == "worker"
    assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert int(worker["stop_grace_period"].rstrip("s")) > 30
    assert worker["restart"] == "unless-stopped"


def test_emulator_serves_on_all_interfaces_with_a_healthcheck():
    emulator = compose()["services"]["emulator"]
    assert emulator["command"][:2] == ["emulator", "serve"]
    assert "0.0.0.0" in emulator["command"]
    assert "/_emulator/health" in " ".join(emulator["healthcheck"]["test"])
