"""Claims, the study's guarantee that no trial runs twice: atomic under
concurrent processes, and stale exactly when their owner is gone."""
import multiprocessing
import os
import time

import pytest

pytest.importorskip("optuna", reason="the study extra (optuna) is not installed: pip install 'wgan_fast[study]'")

from wgan_fast.study.claims import HOST, Claim, FileClaims, SqlClaims, key_hash  # noqa: E402

KEYS = [f"point{i}|seed=0" for i in range(40)]


def _claim_all(kind, where, out):
    claims = FileClaims(where) if kind == "file" else SqlClaims(where, "s")
    won = [k for k in KEYS if claims.try_claim(k, 0)]
    out.put((os.getpid(), won))


@pytest.mark.parametrize("kind", ["file", "sql"])
def test_concurrent_processes_claim_each_key_once(tmp_path, kind):
    pytest.importorskip("sqlalchemy")
    race_for_claims(kind, str(tmp_path / "claims") if kind == "file" else f"sqlite:///{tmp_path}/claims.db")


def race_for_claims(kind, where):
    """Four processes claim the same 40 keys at once: each key is won by exactly one."""
    if kind == "sql":
        SqlClaims(where, "s")  # the table, before four processes race for rows (sqlite locks the whole file)
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(kind, where, out)) for _ in range(4)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join()
    won = [k for _, keys in results for k in keys]
    assert sorted(won) == sorted(KEYS)  # every key claimed, none twice
    claims = FileClaims(where) if kind == "file" else SqlClaims(where, "s")
    latest = claims.latest()
    owners = {pid for pid, _ in results}
    assert {latest[key_hash(k)].pid for k in KEYS} <= owners
    assert claims.try_claim(KEYS[0], 1) and not claims.try_claim(KEYS[0], 1)  # the next attempt: once too
    assert claims.latest()[key_hash(KEYS[0])].attempt == 1


def test_a_claim_is_stale_exactly_when_its_owner_is_gone(tmp_path):
    ctx = multiprocessing.get_context("fork")
    p = ctx.Process(target=time.sleep, args=(0,))
    p.start()
    p.join()
    now = time.time()
    assert Claim("k", 0, HOST, os.getpid(), "", 0.0).alive(grace=60, now=now)  # this process, however old its beat
    assert not Claim("k", 0, HOST, p.pid, "", now).alive(grace=60, now=now)  # ended, however fresh its beat
    mine = Claim("k", 0, HOST, os.getpid(), "1", now)
    assert not mine.alive(grace=60, now=now)  # the pid now belongs to another process (another start time)
    assert Claim("k", 0, "elsewhere", 1, "", now - 10).alive(grace=60, now=now)  # another host: its heartbeat
    assert not Claim("k", 0, "elsewhere", 1, "", now - 61).alive(grace=60, now=now)


def test_a_claim_file_left_empty_by_a_kill_becomes_stale(tmp_path):
    claims = FileClaims(str(tmp_path))
    path = tmp_path / f"{key_hash('k')}.0.json"
    path.write_text("")  # killed between creating the file and writing its owner
    old = time.time() - 300
    os.utime(path, (old, old))
    c = claims.latest()[key_hash("k")]
    assert c.attempt == 0 and not c.alive(grace=120)
    assert not claims.try_claim("k", 0) and claims.try_claim("k", 1)
    claims.heartbeat([Claim("k", 1, HOST, os.getpid(), "", 0.0)])
    assert claims.latest()[key_hash("k")].heartbeat > old
