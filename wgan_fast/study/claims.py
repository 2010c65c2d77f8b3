"""Claims: which study process runs which trial, so that no trial (point x
seed) ever runs twice, also with many workers on many machines.

A claim is (trial key, attempt), created atomically: a file opened with
O_EXCL next to a journal storage, or a row under a primary key in the
database of an SQL storage. Only the process that created the claim runs
that attempt. Its owner (host, pid and the pid's start time) keeps it alive
with a heartbeat; a claim whose owner is gone (its process ended, on this
host; no heartbeat for `grace` seconds, on another) is stale, and the next
attempt of the same key may then be claimed, once, by anyone. The new
attempt resumes the trial's run folder from its checkpoint.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from dataclasses import dataclass

HOST = socket.gethostname()


def process_start(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), so a reused pid is not its owner."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def this_owner() -> dict:
    return {"host": HOST, "pid": os.getpid(), "pid_start": process_start(os.getpid())}


@dataclass
class Claim:
    key: str
    attempt: int
    host: str
    pid: int
    pid_start: str
    heartbeat: float   # time.time() of the owner's last sign of life

    def alive(self, grace: float, now: float | None = None) -> bool:
        if self.host == HOST:  # this host: the owner process itself says
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                pass
            start = process_start(self.pid)
            return not (start and self.pid_start and start != self.pid_start)
        return (now or time.time()) - self.heartbeat < grace

    def mine(self) -> bool:
        return self.host == HOST and self.pid == os.getpid()


def key_hash(key: str) -> str:
    return hashlib.sha1(key.encode()).hexdigest()[:24]


class FileClaims:
    """Claims as files in a folder (next to the journal storage): `<hash>.<attempt>.json`."""

    def __init__(self, folder: str):
        self.folder = folder
        os.makedirs(folder, exist_ok=True)

    def _path(self, key: str, attempt: int) -> str:
        return os.path.join(self.folder, f"{key_hash(key)}.{attempt}.json")

    def try_claim(self, key: str, attempt: int) -> bool:
        try:
            fd = os.open(self._path(key, attempt), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            json.dump({"key": key, "attempt": attempt, **this_owner()}, f)
            f.flush()
            os.fsync(f.fileno())
        return True

    def heartbeat(self, claims) -> None:
        for c in claims:
            try:
                os.utime(self._path(c.key, c.attempt))
            except OSError:
                pass

    def latest(self) -> dict[str, Claim]:
        """key hash -> its newest claim. A claim file left empty by a kill is owned by nobody, last heard of
        at its modification time (stale after the grace period)."""
        out: dict[str, Claim] = {}
        for name in os.listdir(self.folder):
            parts = name.split(".")
            if len(parts) != 3 or parts[2] != "json" or not parts[1].isdigit():
                continue
            path = os.path.join(self.folder, name)
            try:
                beat = os.path.getmtime(path)
                with open(path) as f:
                    d = json.load(f)
                c = Claim(d["key"], d["attempt"], d["host"], d["pid"], d.get("pid_start", ""), beat)
            except FileNotFoundError:
                continue
            except (OSError, ValueError, KeyError):
                c = Claim("", int(parts[1]), "", 0, "", beat)
            if parts[0] not in out or c.attempt > out[parts[0]].attempt:
                out[parts[0]] = c
        return out


class SqlClaims:
    """Claims as rows of table wgan_fast_study_claims in the storage's database."""

    TABLE = "wgan_fast_study_claims"

    def __init__(self, url: str, study: str):
        import sqlalchemy as sa  # noqa: PLC0415

        self.sa, self.study = sa, study
        from .storage import with_driver  # noqa: PLC0415

        self.engine = sa.create_engine(with_driver(url), pool_pre_ping=True)
        meta = sa.MetaData()
        self.table = sa.Table(
            self.TABLE, meta,
            sa.Column("study", sa.String(512), primary_key=True), sa.Column("key_hash", sa.String(64), primary_key=True),
            sa.Column("attempt", sa.Integer, primary_key=True), sa.Column("key", sa.Text, nullable=False),
            sa.Column("host", sa.String(255)), sa.Column("pid", sa.Integer), sa.Column("pid_start", sa.String(32)),
            sa.Column("heartbeat", sa.Float))
        for _ in range(3):  # workers creating the table at once: one wins, the others find it
            try:
                meta.create_all(self.engine)
                break
            except sa.exc.SQLAlchemyError:
                time.sleep(0.2)

    def try_claim(self, key: str, attempt: int) -> bool:
        row = dict(study=self.study, key_hash=key_hash(key), attempt=attempt, key=key, heartbeat=time.time(),
                   **this_owner())
        try:
            with self.engine.begin() as conn:
                conn.execute(self.table.insert().values(**row))
        except self.sa.exc.IntegrityError:
            return False
        return True

    def heartbeat(self, claims) -> None:
        t = self.table
        with self.engine.begin() as conn:
            for c in claims:
                conn.execute(t.update().where((t.c.study == self.study) & (t.c.key_hash == key_hash(c.key))
                                              & (t.c.attempt == c.attempt)).values(heartbeat=time.time()))

    def latest(self) -> dict[str, Claim]:
        """key hash -> its newest claim."""
        t, out = self.table, {}
        with self.engine.connect() as conn:
            for r in conn.execute(self.sa.select(t).where(t.c.study == self.study)):
                c = Claim(r.key, r.attempt, r.host, r.pid, r.pid_start or "", r.heartbeat or 0.0)
                if r.key_hash not in out or c.attempt > out[r.key_hash].attempt:
                    out[r.key_hash] = c
        return out


def claims_for(storage: str, study: str):
    from .storage import is_url  # noqa: PLC0415

    if is_url(storage):
        return SqlClaims(storage, study)
    return FileClaims(os.path.join(f"{storage}.claims", study))
