import click
import pytest
from click.testing import CliRunner

from stylegan_unlearn.commands.cliutil import IntRanges
from stylegan_unlearn.ranges import parse_int_ranges


def test_parse_ranges_and_singles_in_order():
    assert parse_int_ranges("3,17,40-43") == [3, 17, 40, 41, 42, 43]
    assert parse_int_ranges(" 0 - 2 ") == [0, 1, 2]


@pytest.mark.parametrize("bad", ["", "a", "5-2", "1,,2", "-3"])
def test_parse_ranges_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        parse_int_ranges(bad)


def test_click_type_reports_a_usage_error():
    @click.command()
    @click.option("--seeds", type=IntRanges())
    def cmd(seeds):
        click.echo(sum(seeds))

    runner = CliRunner()
    assert runner.invoke(cmd, ["--seeds", "1-3"]).output.strip() == "6"
    result = runner.invoke(cmd, ["--seeds", "9-1"])
    assert result.exit_code == 2 and "runs backwards" in result.output


def test_cli_group_lists_every_command():
    from stylegan_unlearn.cli import COMMANDS, main

    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output
