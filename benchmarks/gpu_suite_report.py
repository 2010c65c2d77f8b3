"""The headline numbers of the staged GPU suite (benchmarks/gpu_suite.sh):
which benchmark cases they come from, their targets, and the summary.md /
results.json the suite writes after every stage.

HEADLINE is the one list of those cases: benchmarks/conftest.py marks the
benchmarks it names `headline` (any device, so the CPU dry run selects the
same bodies) and the table below is computed from the pytest-benchmark JSON
of the CUDA ones. Targets are the GPU targets of docs/performance.md.
"""
from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass


def _gp(B, variant):
    return f"test_fwd_bwd[cuda-{B}-3x64x64-both-{variant}]"


def _bw(variant):
    return f"test_bandwidth_b1024[cuda-{variant}]"


def _clip(critic, variant):
    return f"test_clip[cuda-{critic}-{variant}]"


def _sn(critic, variant):
    return f"test_spectral_norm_step[cuda-{critic}-update-{variant}]"


def _train(B, variant, penalty=True):
    return f"test_train_iteration[cuda-dcgan64-B{B}-wgan-gp{'' if penalty else '-no-penalty'}-{variant}]"


@dataclass(frozen=True)
class Headline:
    """One row: `ours` against `baseline` (benchmark names as pytest names them).

    kind: speedup      median(baseline) / median(ours), higher is better
          overhead     median(ours) / median(baseline), lower is better
          extra        ours' extra_info[field] (a fraction), higher is better
          graph        ours' extra_info["cuda_graph"] must read "captured"
    target None: reported for context, no verdict.
    """

    key: str
    label: str
    kind: str
    ours: str
    baseline: str | None = None
    field: str | None = None
    target: float | None = None


HEADLINE = [
    Headline("gp_b64_vs_reference", "fused interpolate + penalty, fwd+bwd, B=64 3x64x64: native vs eager reference",
             "speedup", _gp(64, "native"), _gp(64, "reference"), target=5.0),
    Headline("gp_b64_vs_stock", "fused interpolate + penalty, fwd+bwd, B=64 3x64x64: native vs stock eager",
             "speedup", _gp(64, "native"), _gp(64, "stock")),
    Headline("gp_b1024_bandwidth", "fused interpolate + penalty, B=1024: fraction of device-copy DRAM bandwidth",
             "extra", _bw("native"), field="fraction_of_copy_bw", target=0.70),
    Headline("gp_b1024_vs_reference", "fused interpolate + penalty, B=1024: native vs eager reference",
             "speedup", _bw("native"), _bw("reference")),
    Headline("clip_dcgan64_vs_foreach", "clip, DCGAN-64 critic: native vs torch._foreach clamp",
             "speedup", _clip("dcgan64", "native"), _clip("dcgan64", "foreach"), target=1.5),
    Headline("clip_dcgan64_vs_loop", "clip, DCGAN-64 critic: native vs a loop of clamp_",
             "speedup", _clip("dcgan64", "native"), _clip("dcgan64", "loop"), target=5.0),
    Headline("clip_resnet_vs_foreach", "clip, ResNet CIFAR critic: native vs torch._foreach clamp",
             "speedup", _clip("resnet_cifar", "native"), _clip("resnet_cifar", "foreach"), target=1.5),
    Headline("clip_resnet_vs_loop", "clip, ResNet CIFAR critic: native vs a loop of clamp_",
             "speedup", _clip("resnet_cifar", "native"), _clip("resnet_cifar", "loop"), target=5.0),
    Headline("sn_dcgan64_vs_torch", "spectral-norm update, DCGAN-64 critic: native vs torch's parametrization",
             "speedup", _sn("dcgan64", "native"), _sn("dcgan64", "torch"), target=2.0),
    Headline("sn_resnet_vs_torch", "spectral-norm update, ResNet CIFAR critic: native vs torch's parametrization",
             "speedup", _sn("resnet_cifar", "native"), _sn("resnet_cifar", "torch"), target=2.0),
    Headline("train_b64_vs_stock", "DCGAN-64 WGAN-GP iteration, B=64: wgan_fast vs stock",
             "speedup", _train(64, "wgan_fast"), _train(64, "stock"), target=4.0),
    Headline("train_b64_vs_best_stock", "DCGAN-64 WGAN-GP iteration, B=64: wgan_fast vs best-stock",
             "speedup", _train(64, "wgan_fast"), _train(64, "best-stock"), target=2.0),
    Headline("train_b256_vs_stock", "DCGAN-64 WGAN-GP iteration, B=256: wgan_fast vs stock",
             "speedup", _train(256, "wgan_fast"), _train(256, "stock")),
    Headline("train_b256_vs_best_stock", "DCGAN-64 WGAN-GP iteration, B=256: wgan_fast vs best-stock",
             "speedup", _train(256, "wgan_fast"), _train(256, "best-stock")),
    Headline("train_b64_penalty_overhead", "penalty overhead (with / without GP), B=64: wgan_fast",
             "overhead", _train(64, "wgan_fast"), _train(64, "wgan_fast", penalty=False), target=1.6),
    Headline("train_b256_penalty_overhead", "penalty overhead (with / without GP), B=256: wgan_fast",
             "overhead", _train(256, "wgan_fast"), _train(256, "wgan_fast", penalty=False), target=1.6),
    Headline("train_b64_penalty_overhead_stock", "penalty overhead (with / without GP), B=64: stock",
             "overhead", _train(64, "stock"), _train(64, "stock", penalty=False)),
    Headline("train_b64_penalty_overhead_best_stock", "penalty overhead (with / without GP), B=64: best-stock",
             "overhead", _train(64, "best-stock"), _train(64, "best-stock", penalty=False)),
    Headline("train_b256_bf16_peak", "DCGAN-64 WGAN-GP iteration, B=256: wgan_fast fraction of measured bf16 matmul peak",
             "extra", _train(256, "wgan_fast"), field="frac_bf16_peak", target=0.25),
    Headline("train_b256_bf16_peak_best_stock", "DCGAN-64 WGAN-GP iteration, B=256: best-stock fraction of bf16 peak",
             "extra", _train(256, "best-stock"), field="frac_bf16_peak"),
    Headline("train_b64_graph", "wgan_fast iteration replayed as one CUDA graph, B=64", "graph", _train(64, "wgan_fast")),
    Headline("train_b256_graph", "wgan_fast iteration replayed as one CUDA graph, B=256", "graph", _train(256, "wgan_fast")),
]


def headline_benchmarks() -> set[str]:
    """Every benchmark name the headline rows read (their CUDA parametrisations)."""
    return {n for h in HEADLINE for n in (h.ours, h.baseline) if n}


def is_headline(test_name: str) -> bool:
    """Whether a collected benchmark (pytest item name, any device) is one the headline rows read."""
    return test_name.replace("[cpu-", "[cuda-", 1) in headline_benchmarks()


# ---- reading what the stages wrote ---------------------------------------------------

def junit_summary(path: str, max_listed: int = 12) -> dict:
    """Counts, failing tests with the first line of their message, and skip reasons of a junit xml."""
    out = dict(passed=0, failed=0, errors=0, skipped=0, failures=[], skip_reasons={}, selected=[], passed_tests=[])
    for case in ET.parse(path).getroot().iter("testcase"):
        if not case.get("name"):  # the test a KeyboardInterrupt (budget's end) cut short: no result
            continue
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        out["selected"].append(case.get("name", ""))
        failure, error, skipped = case.find("failure"), case.find("error"), case.find("skipped")
        if failure is not None or error is not None:
            node = failure if failure is not None else error
            out["failed" if failure is not None else "errors"] += 1
            if len(out["failures"]) < max_listed:
                message = (node.get("message") or node.text or "").strip().splitlines()
                out["failures"].append(f"{name}: {message[0][:300] if message else '(no message)'}")
        elif skipped is not None:
            out["skipped"] += 1
            reason = (skipped.get("message") or "").strip()
            out["skip_reasons"][reason] = out["skip_reasons"].get(reason, 0) + 1
        else:
            out["passed"] += 1
            out["passed_tests"].append(case.get("name"))
    return out


def benchmark_rows(path: str) -> list[dict]:
    """The benchmarks of a pytest-benchmark JSON, one dict each: name, params, median_s..., extra_info."""
    with open(path) as f:
        data = json.load(f)
    rows = []
    for b in data.get("benchmarks", []):
        stats = b.get("stats") or {}
        rows.append(dict(name=b["name"], fullname=b.get("fullname"), group=b.get("group"), params=b.get("params"),
                         median_s=stats.get("median"), mean_s=stats.get("mean"), stddev_s=stats.get("stddev"),
                         min_s=stats.get("min"), rounds=stats.get("rounds"), extra_info=b.get("extra_info", {})))
    return rows


# ---- the headline table ------------------------------------------------------------------

def _fmt_target(h: Headline) -> str:
    if h.kind == "graph":
        return "captured"
    if h.target is None:
        return "—"
    if h.kind == "speedup":
        return f">= {h.target:g}x"
    if h.kind == "overhead":
        return f"<= {h.target:g}"
    return f">= {h.target:.0%}"


def evaluate(rows: list[dict], not_measured: str, name_missing: bool = True) -> list[dict]:
    """The headline rows from benchmark rows; `not_measured` says why a missing number is missing
    (followed by the missing benchmarks' names when name_missing)."""
    by_name = {r["name"]: r for r in rows}
    out = []
    for h in HEADLINE:
        ours, base = by_name.get(h.ours), by_name.get(h.baseline) if h.baseline else None
        row = dict(key=h.key, label=h.label, kind=h.kind, ours=h.ours, baseline=h.baseline, target=h.target,
                   target_text=_fmt_target(h), ours_median_s=ours and ours["median_s"],
                   baseline_median_s=base and base["median_s"], value=None, verdict=None, reason=None)
        missing = [n for n, r in ((h.ours, ours), (h.baseline, base)) if n and (r is None or r["median_s"] is None)]
        if missing:
            row["verdict"] = "not measured"
            row["reason"] = not_measured + (f" (missing: {', '.join(missing)})" if name_missing else "")
            out.append(row)
            continue
        if h.kind == "speedup":
            row["value"] = base["median_s"] / ours["median_s"]
        elif h.kind == "overhead":
            row["value"] = ours["median_s"] / base["median_s"]
        elif h.kind == "extra":
            row["value"] = ours["extra_info"].get(h.field)
        else:
            row["value"] = ours["extra_info"].get("cuda_graph")
        if row["value"] is None:
            row["verdict"], row["reason"] = "not measured", f"{h.ours} recorded no {h.field or 'cuda_graph'}"
        elif h.kind == "graph":
            row["verdict"] = "met" if row["value"] == "captured" else "NOT met"
        elif h.target is None:
            row["verdict"] = "context"
        else:
            ok = row["value"] <= h.target if h.kind == "overhead" else row["value"] >= h.target
            row["verdict"] = "met" if ok else "NOT met"
        out.append(row)
    return out


def _ms(seconds):
    return "—" if seconds is None else f"{seconds * 1e3:.4g} ms"


def _value(row):
    v = row["value"]
    if v is None:
        return "—"
    if row["kind"] == "graph":
        return str(v)
    if row["kind"] == "extra":
        return f"{v:.1%}"
    return f"{v:.2f}x" if row["kind"] == "speedup" else f"{v:.2f}"


def headline_table(rows: list[dict]) -> str:
    lines = ["| measure | ours | baseline | ratio / value | target | verdict |", "|---|---:|---:|---:|---|---|"]
    for r in rows:
        verdict = r["verdict"] + (f": {r['reason']}" if r["reason"] else "")
        lines.append(f"| {r['label']} | {_ms(r['ours_median_s'])} | {_ms(r['baseline_median_s'])} | {_value(r)} "
                     f"| {r['target_text']} | {verdict} |")
    return "\n".join(lines)


def stage_table(stages: list[dict]) -> str:
    lines = ["| stage | status | time / budget | steps |", "|---|---|---:|---|"]
    for s in stages:
        steps = "; ".join(f"{st['name']}: {st['status']}" + (f" ({st['counts']})" if st.get("counts") else "")
                          for st in s["steps"]) or s["reason"] or "—"
        elapsed = "—" if s["elapsed_s"] is None else f"{s['elapsed_s']:.0f} s"
        budget = "the rest" if s["budget_s"] is None else f"{s['budget_s']:.0f} s"
        lines.append(f"| {s['index']}. {s['name']}: {s['title']} | {s['status']} | {elapsed} / {budget} | {steps} |")
    return "\n".join(lines)


def summary_markdown(results: dict) -> str:
    env = results.get("environment", {})
    device = env.get("device_name") or "no CUDA device"
    lines = [f"# GPU suite ({results['mode']}): {device}",
             "",
             f"Started {results['started_utc']}, updated {results['updated_utc']}, "
             f"{'finished' if results['finished'] else 'still running or cut off'}; "
             f"{results['elapsed_s']:.0f} s of a {results['total_budget_s']:.0f} s budget."
             + (f" Running when last written: {results['running']['log']} (since {results['running']['since_utc']}; "
                "its output so far is current_step.log)." if results.get("running") else ""),
             "",
             "## Headline numbers (targets: docs/performance.md)",
             "",
             headline_table(results["headline"]),
             "",
             "## Stages",
             "",
             stage_table(results["stages"]),
             ""]
    problems = [(s, st) for s in results["stages"] for st in s["steps"] if st.get("reason")]
    if problems:
        lines += ["## Why steps did not pass or run", ""]
        lines += [f"- {s['name']} / {st['name']} ({st['status']}): {st['reason']}" for s, st in problems]
        lines.append("")
    if env:
        lines += ["## Environment", ""]
        lines += [f"- {k}: {v}" for k, v in sorted(env.items())]
        lines.append("")
    return "\n".join(lines)


def write_atomically(path: str, text: str) -> None:
    """Write under a temporary name, then rename: never a half-written file under the final name."""
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
