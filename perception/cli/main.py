"""Entry point of the ``perception`` command.

Each subcommand is a module in ``perception.cli`` exposing ``add_parser(subparsers)`` (which registers
its arguments and sets ``func``) and keeps its imports of heavy libraries inside ``run`` so that
``perception --help`` stays fast. The list below is explicit: a reader finds every command here.
"""

import argparse
import importlib
import sys

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
}


def build_parser():
    parser = argparse.ArgumentParser(
        prog="perception",
        description="m3_perception: camera + LiDAR multi-task perception (boxes, BEV map, occupancy).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS.values():
        importlib.import_module(module).add_parser(sub)
    for p in sub.choices.values():  # descriptions are module docstrings: keep their lines, drop RST quotes
        p.formatter_class = argparse.RawDescriptionHelpFormatter
        p.description = p.description and p.description.replace("``", "").strip()
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
