"""Expected failures, each with its exit code, and the command-line wrapper
that reports them as one line.

A command ends with one of these codes (docs/errors.md):

    0  done
    1  a bug: an unexpected exception, printed with its traceback
    2  usage: a bad argument, config key or value (also a resume whose config differs)
    3  non-finite: the run produced NaN/inf and stopped before using the bad weights
    4  data: a dataset missing, unreadable or too corrupt
    5  missing optional part: a package of an extra that is not installed
    6  checkpoint: unreadable, not a wgan_fast checkpoint, or not fitting the run
    7  device: the requested device is not available (e.g. --device cuda without a GPU)
    8  below threshold: a result missed a threshold the user set (nothing written)
    9  storage: a study's storage cannot be opened, reached or used
    10 file system: a file or folder could not be written or read (a file where a folder should be, no
       permission, no space left)
    130 interrupted (Ctrl-C)

An expected failure is one line on stderr, `wgan_fast.<command>: <kind>: <what
and what to do>`; `WGAN_FAST_DEBUG=1` prints the traceback as well.
"""
from __future__ import annotations

import os
import sys
import traceback
import warnings


class WganFastError(Exception):
    """An expected failure: the message names the file or key and what to do."""

    exit_code = 1
    kind = "error"


class UsageError(WganFastError, ValueError):
    exit_code, kind = 2, "usage error"


class ConfigError(UsageError):
    """A config value that cannot run; the message names the key."""


class NonFiniteError(WganFastError, RuntimeError):
    exit_code, kind = 3, "non-finite"


class DataError(WganFastError, ValueError):
    exit_code, kind = 4, "data error"


class DataNotFound(DataError, FileNotFoundError):
    pass


class MissingDependency(WganFastError, ImportError):
    exit_code, kind = 5, "missing optional part"


class CheckpointError(WganFastError, ValueError):
    exit_code, kind = 6, "checkpoint error"


class CheckpointNotFound(CheckpointError, FileNotFoundError):
    pass


class DeviceError(WganFastError, RuntimeError):
    exit_code, kind = 7, "device error"


class BelowThreshold(WganFastError):
    """A result that misses a threshold the user set; nothing was written."""

    exit_code, kind = 8, "below threshold"


class StorageError(WganFastError):
    """A study's storage (its journal file or database) cannot be opened, reached or used."""

    exit_code, kind = 9, "storage error"


EXIT_CODES = {0: "done", 1: "a bug (traceback printed)", 2: UsageError.kind, 3: NonFiniteError.kind,
              4: DataError.kind, 5: MissingDependency.kind, 6: CheckpointError.kind, 7: DeviceError.kind,
              8: BelowThreshold.kind, 9: StorageError.kind, 10: "file system error",
              130: "interrupted"}


def exit_codes_text() -> str:
    """The exit codes, for the commands' --help."""
    return "exit codes:\n" + "\n".join(f"  {code:<3d} {what}" for code, what in EXIT_CODES.items())


# pip's names of core dependencies whose modules are named otherwise
_PIP_NAMES = {"yaml": "pyyaml", "PIL": "pillow", "torch.utils.tensorboard": "tensorboard"}


def require(module: str, extra: str, what: str):
    """Import a dependency or raise MissingDependency saying what to install:
    the extra of pyproject.toml that declares it, or for extra="core" (a
    dependency of wgan_fast itself, so an incomplete environment) the package."""
    import importlib  # noqa: PLC0415

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if extra == "core":
            package = next((p for m, p in _PIP_NAMES.items() if module == m or module.startswith(m + ".")),
                           module.split(".")[0])
            fix = f"it is a dependency of wgan_fast itself, missing from this environment: pip install {package}"
        else:
            fix = f"install it with: pip install 'wgan_fast[{extra}]'"
        raise MissingDependency(f"{what} needs {module}, which cannot be imported ({exc}); {fix}") from None


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def head(exc: BaseException, n: int = 2) -> str:
    """The first n lines of an exception's message as one line (e.g. load_state_dict's
    title and the first key that does not fit)."""
    return _one_line(" ".join(str(exc).splitlines()[:n]))


def _format_warning(message, category, filename, lineno, line=None):
    return f"[wgan_fast] warning: {_one_line(message)}\n"


def run(prog: str, fn, *args) -> int:
    """Call fn(*args) as the command `prog`; return its exit code.

    Expected failures print one line; anything else is a bug and prints its
    traceback (exit 1).
    """
    debug = os.environ.get("WGAN_FAST_DEBUG") == "1"
    if not debug:
        warnings.formatwarning = _format_warning
    try:
        code = fn(*args)
    except WganFastError as exc:
        if debug:
            traceback.print_exc()
        print(f"wgan_fast.{prog}: {exc.kind}: {_one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        if exc.filename is None:  # not about a file the user named or the command writes: a bug
            raise
        if debug:
            traceback.print_exc()
        where = exc.filename if exc.filename2 is None else f"{exc.filename} -> {exc.filename2}"
        print(f"wgan_fast.{prog}: file system error: {where}: {exc.strerror or exc}; fix the path (--out-dir, "
              f"--name, --out) or free the space", file=sys.stderr)
        return 10
    except KeyboardInterrupt:
        print(f"\nwgan_fast.{prog}: interrupted", file=sys.stderr)
        return 130
    return code if isinstance(code, int) else 0
