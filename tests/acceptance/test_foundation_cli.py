"""The foundation's commands, run as a user would."""

from __future__ import annotations

import json

TOKEN = "tok-acceptance-9d1b7e"


def test_help_lists_the_command_groups_with_one_line_each(run_cli):
    out = run_cli("--help").stdout
    for group in ("db", "account", "restaurant"):
        line = next(line for line in out.splitlines() if line.strip().startswith(group + " "))
        assert len(line.split(None, 1)) == 2, line


def test_db_status_after_migrate_is_up_to_date_and_migrate_again_is_a_noop(run_cli):
    result = run_cli("db", "migrate")
    assert result.returncode == 0, result.stderr
    assert "nothing to do" in result.stdout
    status = json.loads(run_cli("db", "status", "--json").stdout)
    assert status["pending"] == 0 and status["source"] == "DATABASE_URL"


def test_a_wrong_dsn_is_one_clear_line_and_exit_2(run_cli):
    result = run_cli(
        "db", "status", env={"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/nowhere"}
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert (
        len(lines) == 1
        and "host=127.0.0.1 port=1 dbname=nowhere" in lines[0]
        and "refused" in lines[0]
    )


def test_account_add_reads_the_token_from_stdin_and_list_never_prints_it(run_cli):
    added = run_cli(
        "account",
        "add",
        "--name",
        "Nord",
        "--no-check",
        "--base-url",
        "http://127.0.0.1:9/v1.0",
        input=TOKEN + "\n",
    )
    assert added.returncode == 0, added.stderr
    assert "created a new encryption key" in added.stderr
    listed = run_cli("account", "list")
    assert "Nord" in listed.stdout and TOKEN not in listed.stdout + listed.stderr
    as_json = json.loads(run_cli("account", "list", "--json").stdout)
    assert as_json[0]["name"] == "Nord" and TOKEN not in json.dumps(as_json)


def test_account_add_from_an_env_var_and_duplicate_name_is_exit_2(run_cli):
    env = {"MY_TOKEN": TOKEN}
    assert (
        run_cli(
            "account", "add", "--name", "A", "--token-env", "MY_TOKEN", "--no-check", env=env
        ).returncode
        == 0
    )
    again = run_cli(
        "account", "add", "--name", "A", "--token-env", "MY_TOKEN", "--no-check", env=env
    )
    assert again.returncode == 2 and "already exists" in again.stderr
    missing = run_cli(
        "account", "add", "--name", "B", "--token-env", "NOT_SET_ANYWHERE", "--no-check"
    )
    assert missing.returncode == 2 and "NOT_SET_ANYWHERE" in missing.stderr


def test_rotate_key_keeps_tokens_readable(run_cli, dsn, tmp_path, monkeypatch):
    run_cli("account", "add", "--name", "A", "--no-check", input=TOKEN)
    rotated = run_cli("account", "rotate-key", "--drop-old")
    assert rotated.returncode == 0, rotated.stderr
    assert "re-encrypted 1 token(s)" in rotated.stdout
    from loyverse_sync import accounts, db

    monkeypatch.setenv("LOYVERSE_SYNC_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LOYVERSE_SYNC_KEY", raising=False)
    with db.connect(dsn) as conn:
        assert accounts.get_account(conn, "A").token == TOKEN


def test_restaurant_add_list_and_link(run_cli):
    run_cli("account", "add", "--name", "acct", "--no-check", input=TOKEN)
    assert run_cli("restaurant", "add", "--name", "Nord").returncode == 0
    linked = run_cli(
        "restaurant", "link", "Nord", "--account", "acct", "--store", "s-1", "--no-check"
    )
    assert linked.returncode == 0, linked.stderr
    rows = json.loads(run_cli("restaurant", "list", "--json").stdout)
    assert rows[0]["store_id"] == "s-1" and rows[0]["sync_frequency"] == "REALTIME"
    unknown = run_cli(
        "restaurant", "link", "Sud", "--account", "acct", "--store", "s-2", "--no-check"
    )
    assert unknown.returncode == 2 and "no restaurant 'Sud'" in unknown.stderr


def test_commands_on_an_unmigrated_database_say_so(run_cli, empty_database):
    result = run_cli("account", "list", env={"DATABASE_URL": empty_database})
    assert (
        result.returncode == 2 and "not migrated" in result.stderr and "db migrate" in result.stderr
    )
