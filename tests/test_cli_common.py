"""What every command shares (cli/_common.py): start-up without torch, one clean line for
library errors, exit 130 on Ctrl-C or SIGTERM."""

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from stylenas_cli.cli._common import command
from stylenas_cli.errors import OutOfMemory, StylenasError


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["stylize", "--help"]])
def test_help_and_version_do_not_import_torch(args):
    code = (
        "import sys; from click.testing import CliRunner; from stylenas_cli.cli import main; "
        f"r = CliRunner().invoke(main, {args!r}); assert r.exit_code == 0, r.output; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _command(raise_it):
    @command("demo", interrupted="interrupted; rerun with --resume")
    def demo() -> None:
        raise_it()

    return demo


@pytest.mark.parametrize(
    "err",
    [
        StylenasError("photo.jpg: not a readable image\n(details)"),
        OutOfMemory("big.jpg: needs 40 GiB"),
        RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 GB"),
        PermissionError(13, "Permission denied", "/out/x.png"),
    ],
)
def test_failures_end_as_one_error_line_and_exit_1(err):
    def fail():
        raise err

    result = CliRunner().invoke(_command(fail))
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output


def test_ctrl_c_exits_130_with_the_commands_message():
    def stop():
        raise KeyboardInterrupt

    result = CliRunner().invoke(_command(stop))
    assert result.exit_code == 130
    assert result.output.strip() == "error: interrupted; rerun with --resume"


def test_a_bug_keeps_its_traceback():
    def bug():
        raise ZeroDivisionError

    result = CliRunner().invoke(_command(bug))
    assert isinstance(result.exception, ZeroDivisionError)


def test_usage_errors_stay_clicks():
    def nothing():
        raise click.UsageError("give a style")

    result = CliRunner().invoke(_command(nothing))
    assert result.exit_code == 2 and "give a style" in result.output
