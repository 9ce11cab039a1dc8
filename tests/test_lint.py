"""Lint as a test (as ROS 2 packages run flake8 in theirs): ``ruff check`` over the whole repository with the
configuration of ``ruff.toml`` (rules, line length, what is excluded) must find nothing."""

import importlib.util
import subprocess
import sys

import pytest

from conftest import REPO


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None,
                    reason="ruff is not installed (pip install -e .[dev] installs it)")
def test_ruff_check_is_clean():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"ruff check found problems (fix them, see ruff.toml):\n{done.stdout}{done.stderr}"
