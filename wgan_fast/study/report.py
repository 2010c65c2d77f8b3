"""`study report`: results.csv, report.md and its figures in the study folder.

The table has one row per configuration, mean ± std over its seeds' finished
trials, sorted by the objective; the figures show the objective against
training steps and wall time (a curve per configuration, a band of ± one
standard deviation over seeds), the last sample grid of each configuration
side by side, and for searches Optuna's optimisation history and parameter
importances.
"""
from __future__ import annotations

import glob
import os

import numpy as np

from ..atomic import atomic_path, write_text
from . import results
from .spec import LOG_METRICS

FIGURES = "figures"
LABELLED = 6  # configurations named in a figure; beyond that the best LABELLED are, the rest drawn grey
GRIDS = 8     # sample grids shown (the best configurations')


def write_report(study, spec, study_dir: str) -> str:
    rows = results.trial_rows(study, spec)
    results.write_csv(rows, spec, study_dir)
    figures_dir = os.path.join(study_dir, FIGURES)
    os.makedirs(figures_dir, exist_ok=True)
    groups = results.groups(rows, spec)
    figures, notes = [], []
    for name, fn in (("objective_vs_steps.png", _curves_by_step), ("objective_vs_time.png", _curves_by_time),
                     ("samples.png", _sample_grids)):
        made = fn(groups, spec, os.path.join(figures_dir, name), notes)
        if made:
            figures.append(name)
    if spec.search is not None:
        figures += _search_plots(study, figures_dir, notes)
    path = os.path.join(study_dir, "report.md")
    write_text(path, markdown(spec, rows, groups, figures, notes))
    return path


def markdown(spec, rows, groups, figures, notes) -> str:
    obj = spec.objective
    measured = (f"{obj['metric']} ({obj['features']} features, {obj['n']} samples vs {obj['n_real']} real)"
                if obj["metric"] not in LOG_METRICS else f"{obj['metric']} (training log)")
    budget = ", ".join(f"{v:g} {k}" for k, v in spec.budget.items())
    states = {s: sum(r["state"] == s for r in rows) for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "INTERRUPTED")}
    lines = [f"# Study {spec.name}", ""]
    if spec.description:
        lines += [spec.description, ""]
    lines += [f"Objective: {measured}, {obj['direction']}d, measured every {obj['every']} steps. Budget per trial: "
              f"{budget}. Seeds: {', '.join(map(str, spec.seeds))}. Trials: {len(rows)} ("
              + ", ".join(f"{n} {s.lower()}" for s, n in states.items() if n) + ").", "",
              f"Base: `{spec.base}`" if spec.base else "Base: the train defaults", "", _table(spec, groups), ""]
    failed = [r for r in rows if r["state"] == "FAIL"]
    if failed:
        lines += ["Failed trials:", ""] + [f"- trial {r['number']} ({_describe(r, spec)}): {r['error']}"
                                           for r in failed] + [""]
    for f in figures:
        lines += [f"![{f[:-4]}]({FIGURES}/{f})", ""]
    lines += [f"Note: {n}" for n in notes]
    return "\n".join(lines).rstrip() + "\n"


def _describe(row, spec) -> str:
    return ", ".join([f"{k}={row.get(k)}" for k in spec.varied] + [f"seed={row['seed']}"])


def _table(spec, groups) -> str:
    metric = spec.objective["metric"]
    rows = [r for g in groups for r in g.rows]
    extra = [m for m in results.metric_names(rows)
             if m.startswith(("eval_", "best_")) or m in ("precision", "recall", "class_acc", "wdist")]
    extra = [m for m in extra if m not in (f"eval_{metric}",) and not m.startswith("eval_n")]
    head = ["#"] + spec.varied + [f"{metric} ({spec.objective['direction'][:3]})"] + extra + \
        ["steps", "wall s", "it/s", "seeds", "failed", "pruned"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rank, g in enumerate(groups, 1):
        cells = [str(rank)] + [f"`{g.params.get(k)}`" for k in spec.varied] + [f"**{results.mean_std(g.values('objective'))}**"]
        cells += [results.mean_std(g.values(f"m_{m}")) for m in extra]
        cells += [results.mean_std(g.values(k)) for k in ("steps", "seconds", "it_per_s")]
        cells += [str(g.count("COMPLETE")), str(g.count("FAIL")), str(g.count("PRUNED"))]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def _label(g, spec) -> str:
    return ", ".join(f"{k}={g.params.get(k)}" for k in spec.varied) or g.point


def _figure_labels(groups, spec) -> list[str]:
    """One name per configuration for figures: the full labels when few and short, else `#k` (the table's row)."""
    full = [_label(g, spec) for g in groups]
    if len(groups) <= LABELLED and all(len(f) <= 60 for f in full):
        return full
    return [f"#{rank}" for rank in range(1, len(groups) + 1)]


def _plt():
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def _save(fig, path: str) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png", bbox_inches="tight")


def _band(ax, x, ys, label) -> None:
    ys = np.asarray(ys, dtype=float)
    mean = ys.mean(0)
    if label is None:  # one of many: context, not a named curve
        ax.plot(x, mean, color="0.75", linewidth=0.8, zorder=1)
        return
    (line,) = ax.plot(x, mean, label=label, marker="o" if len(x) <= 20 else None, zorder=2)  # short: markers
    if len(ys) > 1:
        sd = ys.std(0, ddof=1)
        if len(x) == 1:  # one measurement: a band has no width, draw the spread as an error bar
            ax.errorbar(x, mean, yerr=sd, color=line.get_color(), capsize=4)
        else:
            ax.fill_between(x, mean - sd, mean + sd, color=line.get_color(), alpha=0.2)


def _curves_by_step(groups, spec, path, notes) -> bool:
    """Mean and ± sd over seeds at the steps every seed measured."""
    return _curves(groups, spec, path, notes, by_time=False)


def _curves_by_time(groups, spec, path, notes) -> bool:
    """Each seed's curve interpolated to a common time axis (up to the shortest seed's time)."""
    return _curves(groups, spec, path, notes, by_time=True)


def _curves(groups, spec, path, notes, by_time: bool) -> bool:
    plotted, grey, plt = 0, 0, _plt()
    labels = _figure_labels(groups, spec)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for rank, (g, name) in enumerate(zip(groups, labels), 1):
        curves = [r["curve"] for r in g.rows if r["state"] in ("COMPLETE", "PRUNED") and r["curve"]]
        if not curves:
            continue
        if by_time:
            end = min(c[-1][1] for c in curves)
            start = max(c[0][1] for c in curves)
            x = np.linspace(start, end, 50) if end > start else np.array([end])
            ys = [np.interp(x, [p[1] for p in c], [p[2] for p in c]) for c in curves]
            x = x / 60
        else:
            steps = sorted(set.intersection(*[{p[0] for p in c} for c in curves]))
            if not steps:
                continue
            x = np.array(steps)
            ys = [[dict((p[0], p[2]) for p in c)[s] for s in steps] for c in curves]
        named = rank <= LABELLED
        _band(ax, x, ys, f"{name} (n={len(curves)})" if named else None)
        plotted, grey = plotted + 1, grey + (not named)
    if not plotted:
        plt.close(fig)
        notes.append(f"no curves of the objective to plot against {'time' if by_time else 'steps'} "
                     f"(objective {spec.objective['metric']} is measured once, at the end, or no trial finished)")
        return False
    ax.set_xlabel("wall time (min)" if by_time else "generator steps")
    ax.set_ylabel(spec.objective["metric"])
    ax.set_title(f"{spec.name}: {spec.objective['metric']} (mean ± sd over seeds)")
    ax.grid(alpha=0.3)
    if grey:
        ax.plot([], [], color="0.75", label=f"the other {grey}")
    numbered = labels[0].startswith("#")
    ax.legend(fontsize=8, title="#k: row k of report.md's table" if numbered else None, title_fontsize=8)
    _save(fig, path)
    plt.close(fig)
    return True


def _last_grid(row) -> str | None:
    found = sorted(glob.glob(os.path.join(row["run_dir"], "samples", "step_*.png"))) if row["run_dir"] else []
    return found[-1] if found else None


def _sample_grids(groups, spec, path, notes) -> bool:
    """The last sample grid of each configuration (its first seed with one), side by side: the best GRIDS."""
    picks = []
    for g, name in zip(groups, _figure_labels(groups, spec)):
        grid = next((p for p in map(_last_grid, g.rows) if p), None)
        if grid:
            picks.append((name, grid))
    missing = len(groups) - len(picks)
    picks = picks[:GRIDS]
    if missing:
        notes.append(f"{missing} configuration(s) have no sample grid in this folder (not run here, or not yet)")
    if not picks:
        return False
    from PIL import Image  # noqa: PLC0415

    plt = _plt()
    cols = min(4, len(picks))
    nrows = (len(picks) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 3.5 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (name, grid) in zip(axes.flat, picks):
        ax.imshow(np.asarray(Image.open(grid).convert("RGB")))
        ax.set_title(f"{name}\n{os.path.basename(grid)[5:-4].lstrip('0')} steps", fontsize=8)
    _save(fig, path)
    plt.close(fig)
    return True


def _search_plots(study, figures_dir, notes) -> list[str]:
    """Optuna's optimisation history and parameter importances (these need finished trials)."""
    import warnings  # noqa: PLC0415

    from optuna.visualization import matplotlib as ovm  # noqa: PLC0415

    plt, made = _plt(), []
    for name, fn in (("optimization_history.png", ovm.plot_optimization_history),
                     ("param_importances.png", ovm.plot_param_importances)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib backend experimental
                ax = fn(study)
            _save(ax.figure, os.path.join(figures_dir, name))
            plt.close(ax.figure)
            made.append(name)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            notes.append(f"{name[:-4].replace('_', ' ')} not drawn: {' '.join(str(exc).split())}")
    return made
