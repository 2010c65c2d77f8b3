"""Files written whole or not at all.

`atomic_path(final)` yields a temporary path in the same folder; when the
block ends without an exception the file is fsync'd and renamed over `final`
(rename is atomic on POSIX) and the folder fsync'd; otherwise it is removed.
A kill at any moment leaves the old file or the new one, never half a file
under a final name.
"""
from __future__ import annotations

import contextlib
import os
import tempfile


def fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(final: str, prefix: str = ".tmp_"):
    folder = os.path.dirname(os.path.abspath(final))
    os.makedirs(folder, exist_ok=True)
    suffix = os.path.splitext(final)[1] + ".tmp"  # keeps the extension visible to writers that infer a format
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private; the final file gets open()'s usual mode
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(folder)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text(path: str, text: str) -> str:
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(text)
    return path
