"""Entry point of the ``perception`` command.

Each subcommand is a module in ``perception.cli`` exposing ``add_parser(subparsers)`` (which registers
its arguments and sets ``func``) and keeps its imports of heavy libraries inside ``run`` so that
``perception --help`` stays fast. The list below is explicit: a reader finds every command here.

Errors meant for the person at the keyboard (bad arguments, and the exceptions of
:data:`perception.cli.errors.USER_ERRORS` that a command's ``run`` raises) end the same way for every
command: one line ``perception <command>: error: <message>`` on stderr and exit code 2. ``--debug`` shows
the traceback instead. Any other exception is a bug and keeps its traceback.
"""

import argparse
import importlib
import sys

from perception.cli.errors import USER_ERRORS

# subcommand name -> module in perception.cli
COMMANDS = {
    "synth": "perception.cli.synth",
    "index": "perception.cli.index",
    "show": "perception.cli.show",
    "train": "perception.cli.train",
    "eval": "perception.cli.evaluate",
    "convert": "perception.cli.convert",
    "replay": "perception.cli.replay",
    "demo": "perception.cli.demo",
    "bench": "perception.cli.bench",
    "export": "perception.cli.export",
    "calibrate-norms": "perception.cli.calibrate_norms",
}

DEBUG_HELP = "on an error, show the traceback instead of one line"


def error_line(prog, message):
    """``<prog>: error: <message>`` on one line (a multi-line message joined with '; ')."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    return f"{prog}: error: {'; '.join(lines)}"


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser whose own errors are one line, as the errors of the commands (no usage block)."""

    def error(self, message):
        self.exit(2, error_line(self.prog, f"{message} (see {self.prog} --help)") + "\n")


def build_parser():
    parser = CommandParser(
        prog="perception",
        description="m3_perception: camera + LiDAR multi-task perception (boxes, BEV map, occupancy).",
    )
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")  # subparsers are CommandParsers too
    for module in COMMANDS.values():
        importlib.import_module(module).add_parser(sub)
    for p in sub.choices.values():  # descriptions are module docstrings: keep their lines, drop RST quotes
        p.formatter_class = argparse.RawDescriptionHelpFormatter
        p.description = p.description and p.description.replace("``", "").strip()
        # also after the command; SUPPRESS: not given there, it leaves the top-level value alone
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    parser.command_parsers = sub.choices
    return parser


def main(argv=None):
    """Run ``perception`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code. Argument errors
    raise ``SystemExit(2)`` as argparse does."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # argparse would blame "perception": name the command the arguments were given to
        (parser.command_parsers.get(args.command) or parser).error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except USER_ERRORS as e:
        if args.debug:
            raise
        print(error_line(f"perception {args.command}", str(e) or type(e).__name__), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
