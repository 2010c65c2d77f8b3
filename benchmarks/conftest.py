"""Shared pieces of the benchmarks and the ratio table printed after them.

Every benchmark puts `variant` (e.g. native / reference / stock) and a `case`
(what is being measured, same for all variants) into extra_info; at the end of
the session the medians of each case are compared against its baseline
variant and printed, and written to benchmarks/results/latest.json. The cases of the
GPU suite's headline table are marked `headline` (`pytest benchmarks -m headline`).
"""
import json
import os
import platform
import time

import pytest
import torch

from gpu_suite_report import is_headline
from wgan_fast.runtime import keep_freed_memory

RESULTS = os.path.join(os.path.dirname(__file__), "results")


# Freed memory stays in the process (see wgan_fast.runtime): otherwise page
# faults on fresh multi-MB tensors land on whichever case meets a trimmed
# heap, and medians of the same case moved 5x between runs. Both variants of
# every case run under the same setting; WGAN_FAST_BENCH_MALLOC=default off.
ALLOCATOR = keep_freed_memory()


def pytest_configure(config):
    config.addinivalue_line("markers", "headline: a case of the GPU suite's headline table (gpu_suite_report.HEADLINE)")


def pytest_collection_modifyitems(config, items):
    # `-m headline` selects these on every device: the CPU dry run runs the same bodies once.
    for item in items:
        if is_headline(item.name):
            item.add_marker(pytest.mark.headline)


def _rows(session):
    rows = []
    for bench in session.benchmarks:
        info = bench.extra_info or {}
        if "case" not in info or bench.stats is None:
            continue
        rows.append(dict(case=info["case"], variant=info["variant"], baseline=info.get("baseline"),
                         median_s=bench.stats.median, extra={k: v for k, v in info.items() if k not in ("case", "variant", "baseline")}))
    return rows


def penalty_overheads(rows):
    """{(gp case, variant): median(with penalty) / median(without)} for rows that name a penalty_pair."""
    by = {}
    for r in rows:
        pair = r["extra"].get("penalty_pair")
        if pair:
            by.setdefault((pair, r["variant"]), {})[r["case"] == pair] = r["median_s"]
    return {k: v[True] / v[False] for k, v in by.items() if True in v and False in v}


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    session = getattr(config, "_benchmarksession", None)
    if session is None or getattr(session, "disabled", False):
        return
    rows = _rows(session)
    if not rows:
        return
    by_case = {}
    for r in rows:
        by_case.setdefault(r["case"], {})[r["variant"]] = r
    tw = terminalreporter
    tw.section("wgan_fast: medians and speed-ups against the stated baseline (same run)")
    table = []
    for case, variants in sorted(by_case.items()):
        for name, r in sorted(variants.items()):
            base = variants.get(r["baseline"]) if r["baseline"] else None
            speedup = base["median_s"] / r["median_s"] if base else None
            r["speedup_vs_" + str(r["baseline"])] = speedup
            line = f"{case:58s} {name:12s} median {r['median_s'] * 1e3:10.4f} ms"
            if speedup:
                line += f"   x{speedup:6.2f} vs {r['baseline']}"
            for k, v in r["extra"].items():
                line += f"   {k}={v:.4g}" if isinstance(v, float) else f"   {k}={v}"
            tw.write_line(line)
            table.append(r)
    overheads = penalty_overheads(table)
    if overheads:
        tw.section("wgan_fast: penalty overhead, time(iteration with GP) / time(without), same variant")
        for (case, variant), ratio in sorted(overheads.items()):
            tw.write_line(f"{case:58s} {variant:14s} {ratio:6.2f}")
    os.makedirs(RESULTS, exist_ok=True)
    meta = dict(
        date=time.strftime("%Y-%m-%d %H:%M:%S"),
        machine=platform.machine(),
        processor=platform.processor(),
        cpu_count=os.cpu_count(),
        torch=torch.__version__,
        threads=torch.get_num_threads(),
        cuda_device=torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        allocator=ALLOCATOR,
    )
    with open(os.path.join(RESULTS, "latest.json"), "w") as f:
        json.dump(dict(meta=meta, results=table,
                       penalty_overhead=[dict(case=c, variant=v, ratio=r) for (c, v), r in overheads.items()]),
                  f, indent=1)
