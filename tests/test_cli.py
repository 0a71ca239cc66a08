"""The command line: through Typer's runner and as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys

from typer.testing import CliRunner

from qzpay.cli import app


class TestDemo:
    def test_walks_the_whole_page(self) -> None:
        result = CliRunner().invoke(app, ["demo"])
        assert result.exit_code == 0, result.output
        for step in ("Create", "Get it by id", "Link", "List", "Update", "Delete", "event log"):
            assert step in result.output
        for event in ("customer.created", "customer.updated", "customer.deleted"):
            assert event in result.output
        assert "equal to what create returned: True" in result.output
        assert "total=1" in result.output

    def test_runs_as_a_console_script(self) -> None:
        env = {**os.environ, "COLUMNS": "120"}
        result = subprocess.run(
            [sys.executable, "-m", "qzpay", "demo"],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "customer.deleted" in result.stdout

    def test_no_arguments_shows_help(self) -> None:
        result = CliRunner().invoke(app, [])
        assert "demo" in result.output
