"""Every number the CLI takes, fed hostile values: NaN, infinities, 1e308, negatives and
integers past bigint. Each is refused before anything runs, as one `Error:` line that names
the option and its allowed range, exit code 2, no traceback.

The options are enumerated from the click command tree, so an option added later is covered
without touching this file; a numeric option whose type does not state both bounds fails
`test_every_numeric_option_states_its_range`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from loyverse_sync import limits
from loyverse_sync.cli import _common, main

HOSTILE = (
    "nan",
    "NaN",
    "inf",
    "-inf",
    "1e308",
    "-1",
    "-999999999999999999999999",
    "999999999999999999999999",
)

#: (command path, option) -> hostile values that are legal there. Every numeric range is finite
#: and starts at 0 or above, so only id-or-name options accept some: `nan` is a legal account
#: name (looked up as one: "no Loyverse account 'nan'", exit 2, in test_hostile_cli.py).
#: A value listed here is converted, not run.
ACCEPTED: dict[tuple[str, str], frozenset[str]] = {
    ("restaurant link", "--account"): frozenset({"nan", "NaN", "inf", "-inf", "1e308"}),
    # a clock behind ours is a negative offset
    ("emulator modes", "--clock-offset-seconds"): frozenset({"-1"}),
}


def _walk(command: click.Command, path: list[str], ctx: click.Context) -> Iterator[tuple[list[str], click.Parameter]]:
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None, f"{' '.join([*path, name])} is listed but does not load"
            yield from _walk(sub, [*path, name], ctx)
        return
    for param in command.params:
        if isinstance(param.type, click.types.IntParamType | click.types.FloatParamType) or getattr(
            param.type, "takes_numbers", False
        ):
            yield path, param


def numeric_params() -> list[tuple[list[str], click.Parameter]]:
    return list(_walk(main.cli, [], click.Context(main.cli)))


PARAMS = numeric_params()


def _label(path: list[str], param: click.Parameter) -> str:
    return " ".join([*path, param.opts[0] if isinstance(param, click.Option) else (param.name or "?").upper()])


def test_the_tree_has_numeric_options():
    # an empty enumeration would make every test below vacuous
    labels = {_label(p, q) for p, q in PARAMS}
    assert len(PARAMS) >= 40
    assert {"account add --rate-limit", "account add --rate-window", "restaurant link --account",
            "import status RUN_ID", "emulator serve --menu"} <= labels


@pytest.mark.parametrize(("path", "param"), PARAMS, ids=[_label(p, q) for p, q in PARAMS])
def test_every_numeric_option_states_its_range(path, param):
    t = param.type
    if getattr(t, "takes_numbers", False):
        return  # a custom type (id-or-name, menu spec): its refusals are checked below
    assert isinstance(t, _common.IntBetween | _common.FloatBetween), (
        f"{_label(path, param)} is {t!r}: use _common.IntBetween / FloatBetween (both bounds)"
    )
    assert math.isfinite(t.min) and math.isfinite(t.max)


@pytest.mark.parametrize(("path", "param"), PARAMS, ids=[_label(p, q) for p, q in PARAMS])
def test_hostile_numbers_are_one_error_line_exit_2(path, param):
    label = _label(path, param)
    accepted = ACCEPTED.get((" ".join(path), param.opts[0]), frozenset())
    runner = CliRunner()
    checked = 0
    for value in HOSTILE:
        # convert first: a value wrongly accepted must fail here, not start a worker
        try:
            param.type.convert(value, param, None)
        except click.BadParameter:
            pass
        else:
            assert value in accepted, f"{label} accepted {value}"
            continue
        args = [*path, param.opts[0], value] if isinstance(param, click.Option) else [*path, "--", value]
        result = runner.invoke(main.cli, args)
        lines = [line for line in result.output.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("Error")]
        assert result.exit_code == 2, (label, value, result.output, result.exception)
        assert "Traceback" not in result.output
        assert len(errors) == 1, (label, value, result.output)
        hint = param.opts[0] if isinstance(param, click.Option) else (param.name or "").upper()
        assert hint in errors[0], (label, value, errors[0])
        allowed = getattr(param.type, "allowed", None)
        if allowed is not None:
            assert allowed() in errors[0], (label, value, errors[0])
        else:
            assert " to " in errors[0], (label, value, errors[0])  # names the range it wants
        checked += 1
    assert checked + len(accepted) == len(HOSTILE)


def test_the_documented_bounds_are_accepted():
    """The edges named in loyverse_sync/limits.py are legal, just past them is not."""
    account = click.Context(main.cli)
    add = main.cli.get_command(account, "account").get_command(account, "add")  # type: ignore[union-attr]
    by_name = {p.name: p for p in add.params}
    rate_limit, window = by_name["rate_limit"].type, by_name["rate_window"].type
    assert rate_limit.convert(str(limits.RATE_LIMIT_REQUESTS_MAX), None, None) == 100_000
    assert window.convert("86400", None, None) == 86_400.0
    assert window.convert("1", None, None) == 1.0
    for bad in (rate_limit, "100001"), (window, "0.999"), (window, "86400.5"):
        with pytest.raises(click.BadParameter):
            bad[0].convert(bad[1], None, None)
    ref = _common.AccountRef()
    assert ref.convert(str(limits.BIGINT_MAX), None, None) == str(limits.BIGINT_MAX)
    assert ref.convert("Demo merchant", None, None) == "Demo merchant"
    with pytest.raises(click.BadParameter, match="9223372036854775807"):
        ref.convert(str(limits.BIGINT_MAX + 1), None, None)
