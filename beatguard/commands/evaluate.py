"""``beatguard evaluate qrs|personal``: accuracy measures on annotated records.

``qrs`` lives in ``evaluate_qrs`` and ``personal`` in ``evaluate_personal``;
each provides ``add_arguments(parser)`` and ``run(args)``.
"""

from __future__ import annotations

import argparse
import importlib

from beatguard.commands import DefaultsHelpFormatter

KINDS = {
    "qrs": "QRS detection Se and +P against reference beat annotations",
    "personal": "train on the first minutes of each record, score the rest",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind, help_text in KINDS.items():
        module = _kind_module(kind)
        if module is None:
            continue
        cmd = sub.add_parser(
            kind,
            help=help_text,
            description=help_text,
            formatter_class=DefaultsHelpFormatter,
        )
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)


def _kind_module(kind: str):
    name = f"beatguard.commands.evaluate_{kind}"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name == name:
            return None
        raise


def run(args: argparse.Namespace) -> int:
    return args._run(args)
