"""Every ``perception`` command reports a bad argument the same way: one line
``perception <command>: error: <message>`` on stderr naming the file or parameter at fault, exit code 2, no
traceback (``--debug`` shows it). Most cases below get past argparse, so ``main``'s catching is what's tested."""

import subprocess
import sys
from pathlib import Path

import pytest

from perception.cli.main import COMMANDS, main

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "configs" / "tiny.py")
MISSING = "/nonexistent/perception-test"


def bad_run_args(tmp):
    """``(command, argv with one bad argument that argparse accepts, text the error line must contain)``:
    each command at least once. None of them needs a model to be built (fast, and independent of the model
    code): the bad argument is found first."""
    return [
        ("synth", ["synth", "--out", f"{tmp}/synth", "--scenes", "0"], "scenes"),
        ("index", ["index", "--dataroot", MISSING, "--version", "v1.0-mini", "--out", f"{tmp}/i.pkl"], MISSING),
        ("show", ["show", "0", "--info", f"{MISSING}.pkl", "--out", f"{tmp}/show"], f"{MISSING}.pkl"),
        ("show", ["show", "0", "--dataroot", MISSING, "--out", f"{tmp}/show"], "--version"),
        ("train", ["train", f"{MISSING}.py", "--work-dir", f"{tmp}/work"], f"{MISSING}.py"),
        ("eval", ["eval", f"{MISSING}.py", f"{MISSING}.pth", "--dataroot", MISSING], f"{MISSING}.py"),
        ("eval", ["eval", "--results", f"{tmp}/det.json", "--dataroot", MISSING, "--out", f"{tmp}/eval"], MISSING),
        ("eval", ["eval", "--results", f"{tmp}/det.json", "--dataroot", MISSING, "--no-lidar-model", TINY, "m.pth"],
         "--no-lidar-model"),
        ("convert", ["convert", "nuscenes", "--dataroot", MISSING, "--out", f"{tmp}/c.mcap"], MISSING),
        ("replay", ["replay", f"{MISSING}.mcap", "--list-topics"], f"{MISSING}.mcap"),
        ("demo", ["demo", "--config", f"{MISSING}.py", "--cache", f"{tmp}/demo"], f"{MISSING}.py"),
        ("bench", ["bench", TINY, "--frames", "0"], "--frames"),
        ("export", ["export", TINY, "--random-weights", "--onnx", f"{tmp}/o.onnx", "--opset", "11"], "--opset"),
        ("calibrate-norms", ["calibrate-norms", TINY, f"{MISSING}.pth", "--dataroot", MISSING, "--out",
                             f"{tmp}/c.pth"], MISSING),
    ]


CASES = [(command, i) for i, (command, _, _) in enumerate(bad_run_args("TMP"))]


def first_argv(command, tmp):
    return next(argv for c, argv, _ in bad_run_args(tmp) if c == command)


def run_cli(argv, capsys):
    """``(exit code, stderr)`` of ``perception argv`` in this process (argparse's errors exit)."""
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def assert_one_error_line(code, err, command, names):
    assert code == 2, err
    assert "Traceback" not in err
    assert err.endswith("\n") and err.count("\n") == 1, f"not one line: {err!r}"
    assert err.startswith(f"perception {command}: error: "), err
    assert names in err, f"{names!r} not named in {err!r}"


def test_every_command_has_a_case():
    assert {command for command, _ in CASES} == set(COMMANDS)


@pytest.mark.parametrize("command, case", CASES)
def test_bad_argument_is_one_error_line(command, case, tmp_path, capsys):
    _, argv, names = bad_run_args(tmp_path)[case]
    code, err = run_cli(argv, capsys)
    assert_one_error_line(code, err, command, names)


def test_demo_refuses_a_bad_config_before_synthesizing(tmp_path, capsys):
    argv = first_argv("demo", tmp_path)
    assert run_cli(argv, capsys)[0] == 2
    assert not (tmp_path / "demo").exists()


@pytest.mark.parametrize("argv, command, names", [
    (["synth", "--scenes", "2"], "synth", "--out"),  # missing required option
    (["train", TINY, "--device", "tpu"], "train", "--device"),  # invalid choice
    (["index", "--dataroot", "d", "--version", "v", "--out", "o", "--num-sweeps", "ten"], "index", "--num-sweeps"),
    (["show", "0", "--out", "o", "--no-such-option"], "show", "--no-such-option"),  # blamed on its command
])
def test_argparse_errors_are_one_line_too(argv, command, names, capsys):
    assert_one_error_line(*run_cli(argv, capsys), command, names)


def test_unknown_command_and_option_before_it(capsys):
    code, err = run_cli(["--no-such-option"], capsys)
    assert code == 2 and err.startswith("perception: error: ") and err.count("\n") == 1
    code, err = run_cli(["no-such-command"], capsys)
    assert code == 2 and err.startswith("perception: error: ") and "no-such-command" in err


def test_debug_after_the_command_raises(tmp_path):
    argv = first_argv("show", tmp_path)
    with pytest.raises(FileNotFoundError, match="info file not found"):
        main([*argv, "--debug"])


def test_debug_shows_the_traceback(tmp_path):
    argv = first_argv("show", tmp_path)
    done = subprocess.run([sys.executable, "-m", "perception", "--debug", *argv], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "FileNotFoundError: info file not found" in done.stderr
