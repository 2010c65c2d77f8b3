"""Command-line plumbing every command shares: argparse with a bad argument
reported as one line (exit code 2) and the exit codes under --help."""
from __future__ import annotations

import argparse

from . import errors


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(errors.UsageError.exit_code, f"{self.prog}: {errors.UsageError.kind}: {message} (see --help)\n")


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def new_parser(command: str, doc: str) -> ArgumentParser:
    """A parser for `wgan-fast <command>` whose help is the module docstring
    and the exit codes."""
    return ArgumentParser(prog=f"wgan-fast {command}", description=doc.strip(), epilog=errors.exit_codes_text(),
                          formatter_class=_Formatter)


def print_text(text: str) -> None:
    """Print to stdout; a reader that closed the pipe early (`| head`) is not an error."""
    import os  # noqa: PLC0415
    import sys  # noqa: PLC0415

    try:
        print(text, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
