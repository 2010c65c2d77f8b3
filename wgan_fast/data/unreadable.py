"""Image files that cannot be decoded whole: the scan's cheap check, the
on_corrupt/max_corrupt policy, the count, and the rule that replaces such a
file in its batch.

A file is checked twice. Once up front, cheaply: PIL's header/structure
verify() and, for a JPEG, its end-of-image marker (a truncated JPEG loses it;
only a JPEG without one near its end is decoded in full, since data appended
after the image also moves it). And again by whichever decoder reads it
during training (PIL, DALI), which may refuse a file the scan let through
(corrupt entropy data or tables, a mode it cannot convert, a file changed
since). Every such file is skipped and counted; over max_corrupt of the
folder, or with on_corrupt=error, training stops with a DataError naming it.

A file found unreadable during training is replaced in its batch by the first
file after it in the epoch's permutation (cyclically) that is not known to be
unreadable and decodes. That choice depends only on which files decode, not on
when a failure was noticed, so a prefetching loader, a non-prefetching one,
the resident stream and a resumed run all put the same file in the slot.
"""
from __future__ import annotations

import os
import warnings

from ..errors import DataError

JPEG_END = b"\xff\xd9"
JPEG_TAIL = 4096  # bytes of a JPEG's end searched for its end-of-image marker
NAMED_WARNINGS = 10  # runtime skips named one by one; later ones are counted only


def why(exc: BaseException) -> str:
    """A decoder's exception as a short one-line reason."""
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def scan_problem(path: str) -> str | None:
    """Why `path` fails the up-front check, or None: PIL's verify(), and a
    JPEG without an end marker in its last JPEG_TAIL bytes must decode whole."""
    from PIL import Image  # noqa: PLC0415

    try:
        with open(path, "rb") as f:
            with Image.open(f) as im:
                fmt = im.format
                im.verify()
            if fmt == "JPEG":
                f.seek(max(0, os.fstat(f.fileno()).st_size - JPEG_TAIL))
                if JPEG_END not in f.read():
                    f.seek(0)
                    with Image.open(f) as im:
                        im.load()  # truncated (PIL refuses it), or data appended after the image (fine)
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for a file it cannot read
        return why(exc)
    return None


def _names(paths) -> str:
    return ", ".join(paths[:NAMED_WARNINGS]) + (" ..." if len(paths) > NAMED_WARNINGS else "")


def report_unreadable(bad, total, max_corrupt):
    """Warn with the count and names of skipped files; DataError above max_corrupt."""
    if not bad:
        return
    msg = f"skipped {len(bad)} unreadable image(s) of {total}: {_names(bad)}"
    if len(bad) > max_corrupt * total:
        raise DataError(msg + f" -- more than max_corrupt={max_corrupt:.2%} of the folder; remove or repair them, "
                        f"or raise --max-corrupt")
    warnings.warn(msg, RuntimeWarning, stacklevel=3)


def on_corrupt_error(path: str, reason: str) -> DataError:
    return DataError(f"{path}: unreadable image ({reason}); on_corrupt=error stops at the first (--on-corrupt skip "
                     f"skips and counts such files)")


class UnreadableFiles:
    """The unreadable files of one stream's file list: those the scan left out
    (paths, `scan_bad`) and those found during training (`found`: index into
    `paths` -> reason), under the policy, with the substitute rule."""

    def __init__(self, paths, scan_bad=(), listed=None, on_corrupt="skip", max_corrupt=0.01):
        self.paths, self.scan_bad = paths, list(scan_bad)
        self.listed = listed if listed is not None else len(paths) + len(self.scan_bad)
        self.on_corrupt, self.max_corrupt = on_corrupt, max_corrupt
        self.found: dict[int, str] = {}

    @property
    def count(self) -> int:
        """Files skipped so far: the scan's and those found since."""
        return len(self.scan_bad) + len(self.found)

    def mark(self, i: int, reason: str) -> None:
        """Record file i as unreadable; DataError under on_corrupt=error or above max_corrupt."""
        if i in self.found:
            return
        self.found[i] = reason
        path = self.paths[i]
        if self.on_corrupt == "error":
            raise on_corrupt_error(path, reason)
        if self.count > self.max_corrupt * self.listed:
            bad = self.scan_bad + [self.paths[j] for j in self.found]
            raise DataError(f"{self.count} of {self.listed} image files are unreadable, more than max_corrupt="
                            f"{self.max_corrupt:.2%} (latest: {path}: {reason}); all: {_names(bad)}; remove or "
                            f"repair them, or raise --max-corrupt")
        if len(self.found) <= NAMED_WARNINGS:
            more = " (further ones are counted, as skipped_files in metrics.jsonl, not named)" \
                if len(self.found) == NAMED_WARNINGS else ""
            warnings.warn(f"{path}: unreadable image ({reason}); skipped and replaced in its batch, {self.count} of "
                          f"{self.listed} files skipped so far{more}", RuntimeWarning, stacklevel=2)

    def walk(self, perm, pos: int):
        """File indices from position `pos` of a permutation on, cyclically,
        leaving out those known to be unreadable: a slot's file, then its
        substitutes in the order they are tried."""
        n = len(perm)
        for t in range(n):
            i = int(perm[(pos + t) % n])
            if i not in self.found:
                yield i
        raise DataError(f"none of the {n} listed image files decodes (e.g. {self.paths[int(perm[pos])]}: "
                        f"{self.found.get(int(perm[pos]), '?')})")

    def _slot(self, order, k: int, j: int):
        epoch, start = order.locate(k)
        return self.walk(order.permutation(epoch), start + j)

    def batch(self, order, k: int) -> list[int]:
        """Batch k's files with each known-unreadable one replaced by its substitute."""
        idx = order.indices(k).tolist()
        if not self.found:
            return idx
        return [i if i not in self.found else next(self._slot(order, k, j)) for j, i in enumerate(idx)]

    def replace(self, order, k: int, j: int, decode):
        """(index, decode(index)) of slot j of batch k's first candidate that
        decodes, marking each one that does not (its own file must be marked)."""
        for i in self._slot(order, k, j):
            try:
                return i, decode(i)
            except Exception as exc:  # noqa: BLE001 - the decoder's own failure types
                self.mark(i, why(exc))
        raise AssertionError("unreachable: walk() raises when it runs out")

    def substituted(self, perm):
        """A permutation with every known-unreadable entry replaced by its substitute."""
        if not self.found:
            return perm
        out = perm.clone()
        for pos, i in enumerate(perm.tolist()):
            if i in self.found:
                out[pos] = next(self.walk(perm, pos))
        return out

    def state_dict(self) -> dict:
        return {self.paths[i]: reason for i, reason in sorted(self.found.items())}

    def load_state_dict(self, state: dict) -> None:
        index = {p: i for i, p in enumerate(self.paths)} if state else {}
        self.found = {index[p]: reason for p, reason in state.items() if p in index}
