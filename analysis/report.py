"""The analysis report: every table as CSV, summaries as Markdown, the figures, and report.md.

:func:`analysis.compute.compute_analysis` turns a checked ground truth and scores table into every
derived table (an :class:`~analysis.compute.Analysis`); :func:`write_report` writes them under one
folder, with the prose of :mod:`analysis.findings`:

========================  ========================================================================
file                      columns
========================  ========================================================================
metrics.csv               target, shots, method, metric, value (one row per target; see
                          analysis.metrics for the metric names); per (cell, method) also
                          n_entries (entries judged, mean over draws), n_draws (k-shot draws
                          judged, each against its own seed's runs) and remedied (score rows with
                          a non-empty remedy); method ``seed_agreement`` holds the noise ceiling
                          (analysis.ceiling): n_seeds, n_entries, spearman, wtau, top1_agreement,
                          each with <metric>_ci_low / _ci_high (bootstrap over entries)
summary.csv               shots, method, metric, mean, ci_low, ci_high, n_targets (means over
                          targets with 95% percentile-bootstrap intervals)
summary.md                the key summary metrics per method, as Markdown
ground_truth.csv          target, shots, entry, acc, best_lr, seconds, n_runs
entry_gains.csv           target, shots, entry, acc, reference, gain
cost.csv                  target, shots, method, k, brute_force_seconds, selection_seconds,
                          finetune_topk_seconds, total_seconds, cost_saved
cost_summary.csv          shots, method, k, n_targets, brute_force_seconds, selection_seconds,
                          finetune_topk_seconds, total_seconds, cost_saved
domain_selection.csv      the multi-domain view (analysis.tables.domain_selection): expert,
                          expert_type, target, shots, method, n_domains, n_scored, n_draws,
                          reference,
                          reference_acc, picked_domain, picked_acc, best_domain, best_acc, gap,
                          top1_gain, top3_gain, trials_to_best, spearman, remedied
domain_ceiling.csv        the noise ceiling of the multi-domain view
                          (analysis.ceiling.domain_agreement_table): expert, target, shots,
                          method, metric, value, as the seed_agreement rows of metrics.csv
best_entries.csv          target, shots, best_entry, best_acc, runner_up, runner_up_acc, margin,
                          spread, baseline_acc (analysis.power.best_entries)
lr_edges.csv              target, shots, entry, best_lr, n_lrs, lr_min, lr_max, edge (low / high /
                          inside; analysis.power.lr_edges), when fine-tuning runs were given
*.png                     the figures (analysis.figures)
report.md                 findings, tables, figures and conventions tied together
========================  ========================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import figures
from analysis.ceiling import AGREEMENT_METRICS, SEED_AGREEMENT, ceiling_medians
from analysis.compute import Analysis, fewer_entries, gain_metric, remedies
from analysis.findings import (
    FEWER_MARK,
    REMEDY_MARK,
    findings,
    fmt_ci,
    fmt_num,
    fmt_percent,
    fmt_seconds,
)
from analysis.metrics import RANDOM_EXPECTED
from analysis.power import (
    EDGE_WARN,
    best_entries,
    largest_spread_target,
    lr_edge_summary,
    means_without,
    target_spread,
)
from analysis.tables import sorted_shots
from core.io import atomic_write, atomic_write_text

# ----------------------------------------------------------------------------------------------
# Markdown tables


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table (pipes in cells escaped)."""

    def cell(v: object) -> str:
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def summary_columns(a: Analysis) -> list[tuple[str, str, int, bool]]:
    """(metric, header, digits, signed) of the columns of the Markdown summary."""
    unit = "gain" if a.baseline else "acc"
    cols = [(gain_metric(a, 1), f"top-1 {unit}", 2, bool(a.baseline))]
    if a.topk >= 3:
        cols.append((gain_metric(a, 3), f"top-3 {unit}", 2, bool(a.baseline)))
    cols += [
        ("trials_to_best", "trials-to-best", 2, False),
        ("spearman", "Spearman", 3, False),
        ("wtau", "weighted tau", 3, False),
    ]
    if a.has_cost:
        cols += [(f"cost_saved_top{k}", f"cost saved (top-{k})", -2, False) for k in a.cost_ks]
    return cols


def method_label(a: Analysis, shots: str, method: str) -> str:
    """The method's name with its marks: remedied inputs, fewer entries, reference, ceiling."""
    label = method
    if method in remedies(a, shots):
        label += f" {REMEDY_MARK}"
    if method in fewer_entries(a, shots):
        label += f" {FEWER_MARK}"
    if method == SEED_AGREEMENT:
        label += " (noise ceiling)"
    return label


def summary_markdown(a: Analysis, shots: str) -> str:
    """The summary table of ``shots``: selection methods, Random's expectation and the noise
    ceiling, then the reference methods in their own block, with the marks explained below."""
    s = a.summary[a.summary["shots"] == shots].set_index(["method", "metric"])
    present = s.index.get_level_values("method").unique()
    methods = [m for m in figures.method_order(present) if m != SEED_AGREEMENT]
    if SEED_AGREEMENT in set(present):
        methods.append(SEED_AGREEMENT)
    cols = summary_columns(a)
    if SEED_AGREEMENT in methods:
        cols.append(("top1_agreement", "top-1 agreement", 3, False))
    at_shots = a.metrics[a.metrics["shots"] == shots]

    def row(m: str) -> list[str]:
        mm = at_shots[at_shots["method"] == m]
        n_entries = mm[mm["metric"] == "n_entries"]["value"]
        cells = [method_label(a, shots, m), str(mm["target"].nunique())]
        cells.append(fmt_num(n_entries.mean(), 1) if len(n_entries) else "n/a")
        for metric, _, digits, signed in cols:
            r = s.loc[(m, metric)] if (m, metric) in s.index else None
            cells.append(fmt_ci(r, digits, signed))
        return cells

    header = ["method", "targets", "entries", *[h for _, h, _, _ in cols]]
    without_header, without_cells = without_columns(a, shots)
    header += without_header

    def full_row(m: str) -> list[str]:
        return row(m) + without_cells(m)

    main = [m for m in methods if m not in a.references]
    text = markdown_table(header, [full_row(m) for m in main])
    refs = [m for m in methods if m in a.references]
    if refs:
        text += (
            "\n\nReference methods (static facts about each entry, not selection scores; shown "
            "for comparison and never ranked in the findings):\n\n"
            + markdown_table(header, [full_row(m) for m in refs])
        )
    marks = []
    rem = remedies(a, shots)
    if rem:
        marks.append(
            f"{REMEDY_MARK} scored with a remedy outside the method's well-posed regime: "
            + "; ".join(f"{m}: {'; '.join(v)}" for m, v in sorted(rem.items()))
        )
    few = fewer_entries(a, shots)
    if few:
        marks.append(
            f"{FEWER_MARK} judged on fewer entries or targets than the others (not ranked in the "
            "findings): " + "; ".join(f"{m}: {', '.join(v)}" for m, v in sorted(few.items()))
        )
    if SEED_AGREEMENT in methods:
        marks.append(
            f"{SEED_AGREEMENT}: agreement between fine-tuning seeds' rankings of the entries, the "
            "ground truth's own noise (see Noise ceiling)"
        )
    left_out = largest_spread_target(a.gt, shots)
    if left_out is not None:
        marks.append(
            f"without {left_out}: the mean over the other targets, leaving out the target whose "
            "entries spread most (max - min fine-tuned accuracy; see Power of the benchmark)"
        )
    if marks:
        text += "\n\n" + "\n".join(f"- {m}" for m in marks)
    return text


#: the headline columns repeated without the target of largest spread: (metric, header, digits)
WITHOUT_METRICS = (("top1", "top-1", 2), ("spearman", "Spearman", 3))


def without_columns(a: Analysis, shots: str):
    """(headers, cells(method)) of the summary's columns "... without <target>": the mean top-1
    gain (or accuracy) and Spearman over the targets of ``shots`` other than the one whose entries
    spread most. No columns when ``shots`` has fewer than two targets."""
    target = largest_spread_target(a.gt, shots)
    if target is None:
        return [], lambda m: []
    unit = "gain" if a.baseline else "acc"
    cols = [
        (gain_metric(a, 1), f"{label} {unit}", digits) if key == "top1" else (key, label, digits)
        for key, label, digits in WITHOUT_METRICS
    ]
    means = means_without(a.metrics, shots, target, [c for c, _, _ in cols])
    signed = {gain_metric(a, 1): bool(a.baseline)}

    def cells(m: str) -> list[str]:
        return [
            fmt_num(means.get((m, metric), np.nan), digits, signed.get(metric, False))
            for metric, _, digits in cols
        ]

    return [f"{label} without {target}" for _, label, _ in cols], cells


def cost_markdown(a: Analysis, shots: str) -> str:
    c = a.cost_summary[a.cost_summary["shots"] == shots]
    methods = figures.method_order(c["method"].unique())
    header = ["method", "brute force", "selection"]
    for k in a.cost_ks:
        header += [f"fine-tune top-{k}", f"saved (top-{k})"]
    rows = []
    for m in methods:
        cm = c[c["method"] == m].set_index("k")
        first = cm.iloc[0]
        cells = [
            m,
            fmt_seconds(first["brute_force_seconds"]),
            fmt_seconds(first["selection_seconds"]),
        ]
        for k in a.cost_ks:
            cells += [
                fmt_seconds(cm.at[k, "finetune_topk_seconds"]),
                fmt_percent(cm.at[k, "cost_saved"]),
            ]
        rows.append(cells)
    return markdown_table(header, rows)


def agreement_markdown(t: pd.DataFrame, keys: Sequence[str] = ()) -> str:
    """Per-cell table of seed agreement rows (:mod:`analysis.ceiling`) with their bootstrap
    intervals, then the medians over cells; ``keys``: leading columns besides target and shots
    (``expert`` for the multi-domain view, whose medians are per expert)."""
    keys = list(keys)
    wide = t.pivot_table(
        index=[*keys, "target", "shots"], columns="metric", values="value", aggfunc="first"
    )
    rows = []
    for index, r in wide.iterrows():
        cells = [*map(str, index), fmt_num(r.get("n_seeds", np.nan), 0)]
        cells.append(fmt_num(r.get("n_entries", np.nan), 0))
        for metric in AGREEMENT_METRICS:
            ci = pd.Series(
                {
                    "mean": r.get(metric, np.nan),
                    "ci_low": r.get(f"{metric}_ci_low", np.nan),
                    "ci_high": r.get(f"{metric}_ci_high", np.nan),
                }
            )
            cells.append(fmt_ci(ci, 3))
        rows.append(cells)
    n = len(keys)
    order = sorted(
        range(len(rows)),
        key=lambda i: (rows[i][:n], sorted_shots([rows[i][n + 1]]), rows[i][n]),
    )
    body = markdown_table(
        [
            *keys,
            "target",
            "shots",
            "seeds",
            "entries",
            "Spearman",
            "weighted tau",
            "top-1 agreement",
        ],
        [rows[i] for i in order],
    )
    groups = [((), t)] if not keys else [((k,), g) for k, g in t.groupby(keys[0], sort=True)]
    median_rows = []
    for key, g in groups:
        for _, r in ceiling_medians(g.drop(columns=keys)).iterrows():
            median_rows.append(
                [
                    *key,
                    r["shots"],
                    str(r["n_cells"]),
                    *(fmt_num(r[m], 3) for m in AGREEMENT_METRICS),
                ]
            )
    if median_rows:
        body += "\n\nMedian over cells:\n\n" + markdown_table(
            [*keys, "shots", "cells", "Spearman", "weighted tau", "top-1 agreement"], median_rows
        )
    return body


def ceiling_markdown(a: Analysis) -> str:
    """The noise ceiling section: per-cell seed agreement with intervals, and its medians."""
    return (
        "How well the fine-tuning seeds agree with each other on the ranking of the entries (each "
        "seed's test accuracy at the entry's ground-truth lr; mean over seed pairs): the noise of the "
        "ground truth itself. It is not a hard ceiling: a score that knew the seed-free ranking "
        "would agree with one seed at about the square root of this agreement (the reliability "
        "bound of a noisy measurement), so a good score can exceed it. "
        "Intervals: 95% percentile bootstrap over the entries of the cell (method "
        f"`{SEED_AGREEMENT}` in `metrics.csv`; its mean over targets is in the summary tables).\n\n"
        + agreement_markdown(a.seed_agreement)
    )


def domain_ceiling_markdown(a: Analysis) -> str:
    """The noise ceiling of the multi-domain view: seed agreement over each expert's domains."""
    return (
        "The same seed agreement over each multi-domain expert's domains alone: the noise of this "
        "view's ground truth (`domain_ceiling.csv`). Near 0, the domains' fine-tuned "
        "accuracies differ by less than the seeds' noise, and no method can be judged on picking "
        "among them.\n\n" + agreement_markdown(a.domain_agreement, ["expert"])
    )


def domain_markdown(a: Analysis) -> str:
    """Means over targets per (expert, shots, method) of the multi-domain view."""
    d = a.domain_selection
    rows = []
    for (expert, shots), ge in d.groupby(["expert", "shots"], sort=True):
        refs = sorted(ge["reference"].unique())
        for method in figures.method_order(ge["method"].unique()):
            g = ge[ge["method"] == method]
            hits = int((g["picked_domain"] == g["best_domain"]).sum())
            label = method + (" (reference)" if method in a.references else "")
            if int(g["remedied"].sum()) > 0:
                label += f" {REMEDY_MARK}"
            if (g["n_scored"] < g["n_domains"]).any():
                label += f" {FEWER_MARK}"
            rows.append(
                [
                    expert,
                    shots,
                    label,
                    str(g["target"].nunique()),
                    ", ".join(refs),
                    fmt_num(g["top1_gain"].mean(), 2, True),
                    fmt_num(g["top3_gain"].mean(), 2, True),
                    fmt_num(g["trials_to_best"].mean(), 2),
                    fmt_num(g["spearman"].mean(), 3),
                    f"{hits} of {len(g)}" if method != RANDOM_EXPECTED else "-",
                    fmt_num(g["gap"].mean(), 2, True),
                ]
            )
    body = markdown_table(
        [
            "expert",
            "shots",
            "method",
            "targets",
            "reference",
            "top-1 gain",
            "top-3 gain",
            "trials-to-best",
            "Spearman",
            "best domain picked",
            "gap to best domain",
        ],
        rows,
    )
    baseline = (
        f"the domain baseline `{a.domain_baseline}` where it is one of the expert's domains, "
        "otherwise the mean accuracy over the expert's domains"
        if a.domain_baseline
        else "the mean accuracy over the expert's domains (no domain baseline configured)"
    )
    return (
        "As in the paper's multi-domain zoo, each multi-domain expert's domains are ranked on their "
        "own (the pooled tables above rank every entry of the zoo together). Gains are against "
        f"{baseline}; means over targets (`domain_selection.csv` has every cell). "
        f"{REMEDY_MARK}: scored with a remedy; {FEWER_MARK}: scored fewer of the expert's domains "
        "than the other methods in some cell.\n\n" + body
    )


def best_entry_markdown(a: Analysis) -> str:
    """Per cell: the best entry, its runner-up and margin, the spread and the baseline."""
    best = best_entries(a.gt, a.baseline)
    rows = []
    for shots in sorted_shots(best["shots"].unique()):
        for _, r in best[best["shots"] == shots].iterrows():
            rows.append(
                [
                    r["target"],
                    shots,
                    r["best_entry"],
                    fmt_num(r["best_acc"], 1),
                    r["runner_up"] or "n/a",
                    fmt_num(r["runner_up_acc"], 1),
                    fmt_num(r["margin"], 1, True),
                    fmt_num(r["spread"], 1),
                    *([fmt_num(r["baseline_acc"], 1)] if a.baseline else []),
                ]
            )
    header = ["target", "shots", "best entry", "acc", "runner-up", "acc", "margin", "spread"]
    header += [f"{a.baseline} acc"] if a.baseline else []
    distinct = ", ".join(
        f"{best[best['shots'] == s]['best_entry'].nunique()} distinct best entries over "
        f"{int((best['shots'] == s).sum())} targets at shots={s}"
        for s in sorted_shots(best["shots"].unique())
    )
    return (
        f"The best entry of each cell ({distinct}); spread = best - worst fine-tuned accuracy "
        "over the entries (points), margin = best - runner-up (`best_entries.csv`).\n\n"
        + markdown_table(header, rows)
    )


def spread_markdown(a: Analysis) -> str:
    """The target of largest spread per shots, which the summary's "without" columns leave out."""
    spread = target_spread(a.gt)
    lines = []
    for shots in sorted_shots(spread["shots"].unique()):
        s = spread[spread["shots"] == shots]
        if len(s) < 2:
            continue
        top, second = s.iloc[0], s.iloc[1]
        lines.append(
            f"- shots={shots}: {top['target']} spreads by {top['spread']:.1f} points, the next "
            f"target ({second['target']}) by {second['spread']:.1f}; the summary's \"without "
            f'{top["target"]}" columns average over the other {len(s) - 1} targets.'
        )
    return "\n".join(lines)


def lr_edge_markdown(a: Analysis) -> str:
    """How often the ground-truth lr lies at the edge of the lr grid, with a note above
    :data:`analysis.power.EDGE_WARN`."""
    summary = lr_edge_summary(a.lr_edges)
    if summary.empty:
        return (
            "No fine-tuning runs with a grid of 3 or more learning rates were given: whether the "
            "grid brackets the best lr cannot be told."
        )
    rows = [
        [
            r["shots"],
            str(r["n_pairs"]),
            str(r["n_low"]),
            str(r["n_high"]),
            fmt_percent(r["share_edge"]),
        ]
        for _, r in summary.iterrows()
    ]
    text = (
        "Share of (cell, entry) pairs whose ground-truth lr is the smallest or the largest of the "
        "grid it was chosen from (grids of 3+ lrs; `lr_edges.csv` has every pair).\n\n"
        + markdown_table(["shots", "pairs", "at lowest lr", "at highest lr", "at an edge"], rows)
    )
    overall = summary[summary["shots"] == "all"].iloc[0]
    if overall["share_edge"] > EDGE_WARN:
        side = "lowest" if overall["n_low"] >= overall["n_high"] else "highest"
        text += (
            f"\n\n**Note:** {fmt_percent(overall['share_edge'])} of the pairs (more than "
            f"{fmt_percent(EDGE_WARN)}) chose an lr at the edge of the grid, mostly the {side}: "
            "the grid may not bracket their best lr, so their accuracies are lower bounds and the "
            "ranking of those entries may change with a wider grid."
        )
    return text


def power_markdown(a: Analysis) -> str:
    """The section on what the benchmark's ground truth can tell (:mod:`analysis.power`)."""
    parts = ["### Best entry per target\n\n" + best_entry_markdown(a)]
    spread = spread_markdown(a)
    if spread:
        parts.append("### Target of largest spread\n\n" + spread)
    parts.append("### Learning rate at the edge of the grid\n\n" + lr_edge_markdown(a))
    return "\n\n".join(parts)


# ----------------------------------------------------------------------------------------------
# writing


def _write_csv(df: pd.DataFrame, path: Path) -> Path:
    return atomic_write(path, lambda tmp: df.to_csv(tmp, index=False, float_format="%.10g"))


def write_figures(a: Analysis, report_dir: Path) -> dict[str, Path]:
    """Every figure that has data; returns {figure name: path}."""
    out: dict[str, Path | None] = {}
    ks = [k for k in (1, 3) if k <= a.topk]
    for shots in sorted_shots(a.metrics["shots"].unique()):
        out[f"gain_heatmap_{shots}"] = figures.gain_heatmap(
            a.metrics, shots, ks, report_dir / f"gain_heatmap_shots={shots}.png"
        )
    out["method_bars"] = figures.method_bars(
        a.summary[a.summary["method"] != SEED_AGREEMENT], report_dir / "trials_spearman_bars.png"
    )
    out["finetune_gain"] = figures.finetune_gain_heatmap(
        a.entry_gains, report_dir / "finetune_gain.png"
    )
    out["accuracy_vs_shots"] = figures.accuracy_vs_shots(
        a.gt, a.baseline, report_dir / "accuracy_vs_shots.png"
    )
    for expert in sorted(a.domain_selection["expert"].unique()):
        out[f"domain_selection_{expert}"] = figures.domain_selection_figure(
            a.domain_selection, expert, report_dir / f"domain_selection_{expert}.png"
        )
    out["cost_bars"] = figures.cost_bars(a.cost_summary, report_dir / "cost_bars.png")
    return {k: v for k, v in out.items() if v is not None}


CONVENTIONS = """\
- **top-k gain**: best fine-tuning accuracy among the k best-scored entries minus the baseline
  entry's accuracy (points); **best gain**: the same over all entries (an oracle). Without a baseline
  the tables show **top-k acc** instead; **regret@k** = best accuracy minus top-k accuracy.
- **trials-to-best**: 1-based position, in score order, of the first entry reaching the best
  accuracy. Entries with equal scores are ordered worst-accuracy-first (ties never help a method);
  the same order defines the top-k.
- **random_expected**: the exact expectation of each metric under a uniformly random order: top-k
  accuracy E = sum_i a_(i) C(i-1, k-1) / C(n, k) over the increasingly sorted accuracies,
  trials-to-best (n + 1) / (m + 1) with m entries tied at the best accuracy, correlations 0.
- **Spearman / Pearson / Kendall (tau-b)** from scipy.stats between scores and accuracies;
  **weighted tau** = `scipy.stats.weightedtau(score, acc)` (scipy's default, the average of both
  lexicographic orders, hyperbolic weights; LogME / SFDA convention); `wtau_gt` in metrics.csv =
  `weightedtau(acc, score, rank=None)` (weights from the ground-truth order; Model Spider
  convention). A cell with one entry, constant scores or constant accuracies has no correlation
  (NaN, shown n/a).
- **top1_rel_acc** = accuracy of the top-1 entry / best accuracy.
- **Means over targets** with 95% percentile-bootstrap intervals over targets ({n_boot} resamples,
  seeded); an interval is omitted when there is one target.
- **Draws**: a k-shot cell whose score tables hold several seeds is judged draw by draw: the
  scores of draw s against fine-tuning seed s's test accuracies at each entry's ground-truth lr
  (the best lr of the seed mean), also the baseline's; a cell's value is the mean over draws
  (`n_draws` in metrics.csv). One draw, or no seed column: judged against the seed mean.
- **n_entries**: entries judged in a cell (mean over draws). A method judged on fewer entries or
  targets than the others of its cells is marked {fewer} and not ranked in the findings.
- **Remedies**: a method scored outside its well-posed regime records a remedy per score row;
  `remedied` in metrics.csv counts those rows, the tables mark the method {remedy}.
- **Reference methods** (`param_count`, `source_accuracy`: static facts about an entry) are shown
  apart and never ranked.
- **Noise ceiling** (`seed_agreement`): the mean over fine-tuning seed pairs of Spearman, weighted
  tau (same convention as the methods' `wtau`) and top-1 agreement (the pair's best entries
  coincide; ties: the sets of best entries intersect) between the seeds' accuracies at the
  ground-truth lr, over the entries with a run of every seed; intervals from a percentile
  bootstrap over entries.
- **Multi-domain view**: per multi-domain expert with two or more scored domains, the methods'
  scores ranked over that expert's domains only; gains against the domain baseline entry, or the
  mean over the expert's domains when it is not configured or not among them. Its own noise
  ceiling is the seed agreement over the expert's domains alone (`domain_ceiling.csv`).
- **Cost**: brute force = seconds of every fine-tuning run (lr grid x seeds) of every entry;
  selection = the method's seconds over all entries (its share of feature extraction included);
  cost saved = 1 - (selection + fine-tuning the top-k entries' grids) / brute force.
"""


def write_report(
    a: Analysis,
    report_dir: str | Path,
    *,
    extra_sections: Sequence[tuple[str, str]] = (),
) -> dict[str, Path]:
    """Write every table, figure and report.md under ``report_dir``; returns {name: path}.

    ``extra_sections``: (title, Markdown body) pairs appended before the conventions (e.g. the
    source-accuracy tables).
    """
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {
        "metrics": _write_csv(a.metrics, report_dir / "metrics.csv"),
        "summary": _write_csv(a.summary, report_dir / "summary.csv"),
        "ground_truth": _write_csv(a.gt, report_dir / "ground_truth.csv"),
        "entry_gains": _write_csv(a.entry_gains, report_dir / "entry_gains.csv"),
    }
    files["best_entries"] = _write_csv(
        best_entries(a.gt, a.baseline), report_dir / "best_entries.csv"
    )
    if not a.lr_edges.empty:
        files["lr_edges"] = _write_csv(a.lr_edges, report_dir / "lr_edges.csv")
    if a.has_cost:
        files["cost"] = _write_csv(a.cost, report_dir / "cost.csv")
        files["cost_summary"] = _write_csv(a.cost_summary, report_dir / "cost_summary.csv")
    if not a.domain_selection.empty:
        files["domain_selection"] = _write_csv(
            a.domain_selection, report_dir / "domain_selection.csv"
        )
    if not a.domain_agreement.empty:
        files["domain_ceiling"] = _write_csv(a.domain_agreement, report_dir / "domain_ceiling.csv")
    shots_values = sorted_shots(a.summary["shots"].unique())
    summary_md = "\n\n".join(
        f"### shots = {shots}\n\n{summary_markdown(a, shots)}" for shots in shots_values
    )
    files["summary_md"] = atomic_write_text(
        report_dir / "summary.md",
        f"# {a.name}: mean over targets [95% bootstrap interval]\n\n{summary_md}\n",
    )
    figs = write_figures(a, report_dir)
    files.update({f"figure:{k}": v for k, v in figs.items()})
    files["report"] = atomic_write_text(
        report_dir / "report.md", report_markdown(a, summary_md, figs, extra_sections)
    )
    return files


def _figure(figs: dict[str, Path], key: str, caption: str) -> str:
    return f"![{caption}]({figs[key].name})\n\n*{caption}*\n\n" if key in figs else ""


def report_markdown(
    a: Analysis,
    summary_md: str,
    figs: dict[str, Path],
    extra_sections: Sequence[tuple[str, str]] = (),
) -> str:
    methods = figures.method_order(a.merged["method"].unique())
    shots_values = sorted_shots(a.summary["shots"].unique())
    targets = sorted(a.merged["target"].unique())
    parts = [f"# zoobench report: {a.name}\n"]
    facts = [
        *(f"- {k}: `{v}`" for k, v in a.inputs.items()),
        f"- targets ({len(targets)}): {', '.join(targets)}",
        f"- shots: {', '.join(shots_values)}",
        f"- entries ranked: {a.merged['entry'].nunique()}",
        f"- methods ({len(methods)}): {', '.join(methods)} (plus `{RANDOM_EXPECTED}`: Random's exact expectation)",
        *(
            [f"- reference methods (not ranked): {', '.join(sorted(a.references))}"]
            if a.references
            else []
        ),
        f"- baseline: `{a.baseline}`"
        if a.baseline
        else "- baseline: none (gain metrics are replaced by accuracies)",
    ]
    parts.append("\n".join(facts) + "\n")
    parts.append("## Findings\n\n" + findings(a) + "\n")
    parts.append("## Summary (mean over targets [95% bootstrap interval])\n\n" + summary_md + "\n")
    parts.append(
        "Per-target values of every metric (also `pearson`, `kendall`, `wtau_gt`, `top1_rel_acc`, "
        "`regret_at_k`, `best_gain`) are in `metrics.csv`; the means of all of them in `summary.csv`.\n"
    )
    ks = [k for k in (1, 3) if k <= a.topk]
    heat = "".join(
        _figure(
            figs,
            f"gain_heatmap_{s}",
            f"top-{'/'.join(map(str, ks))} selection per target and method, shots={s}",
        )
        for s in shots_values
    )
    parts.append("## Selection per target\n\n" + heat)
    parts.append(
        "## Trials-to-best and rank correlation\n\n"
        + _figure(
            figs, "method_bars", "mean trials-to-best and Spearman rho over targets, 95% intervals"
        )
    )
    parts.append(
        "## Fine-tuning accuracy of the zoo\n\n"
        + _figure(figs, "finetune_gain", "fine-tuning accuracy of each entry minus the reference")
        + _figure(figs, "accuracy_vs_shots", "best entry of the zoo vs the baseline, by shots")
    )
    parts.append("## Power of the benchmark\n\n" + power_markdown(a) + "\n")
    if a.has_cost:
        cost_md = "\n\n".join(f"### shots = {s}\n\n{cost_markdown(a, s)}" for s in shots_values)
        parts.append(
            "## Cost (totals over targets)\n\n"
            + cost_md
            + "\n\n"
            + _figure(
                figs, "cost_bars", "brute-force fine-tuning vs selection + fine-tuning the top-k"
            )
        )
    else:
        parts.append("## Cost\n\nNo fine-tuning or selection seconds were given: no cost table.\n")
    if not a.seed_agreement.empty:
        parts.append("## Noise ceiling\n\n" + ceiling_markdown(a) + "\n")
    if not a.domain_selection.empty:
        parts.append(
            "## Multi-domain view: selecting a domain within each multi-domain expert\n\n"
            + domain_markdown(a)
            + "\n\n"
            + "".join(
                _figure(figs, f"domain_selection_{e}", f"domain picked per target for {e}")
                for e in sorted(a.domain_selection["expert"].unique())
            )
        )
        if not a.domain_agreement.empty:
            parts.append(
                "### Noise ceiling of the multi-domain view\n\n" + domain_ceiling_markdown(a) + "\n"
            )
    for title, body in extra_sections:
        parts.append(f"## {title}\n\n{body}\n")
    if a.notes:
        parts.append("## Data notes\n\n" + "\n".join(f"- {n}" for n in a.notes) + "\n")
    parts.append(
        "## Conventions\n\n"
        + CONVENTIONS.format(n_boot=a.n_boot, fewer=FEWER_MARK, remedy=REMEDY_MARK)
    )
    return "\n".join(parts)


def source_tables_section(zoo_dir: str | Path, report_dir: str | Path) -> tuple[str, str] | None:
    """The source-accuracy tables of the zoo (analysis.source_tables), when that module and a zoo
    manifest exist; None otherwise. Markdown tables are inlined, other files linked."""
    manifest = Path(zoo_dir) / "manifest.csv"
    if not manifest.is_file():
        return None
    try:
        from analysis.source_tables import source_accuracy_tables
    except ModuleNotFoundError as e:
        if e.name != "analysis.source_tables":
            raise
        return None
    Path(report_dir).mkdir(parents=True, exist_ok=True)
    paths = source_accuracy_tables(zoo_dir, report_dir)
    body = []
    for label, path in sorted(paths.items()):
        path = Path(path)
        if path.suffix == ".md" and path.is_file():
            body.append(f"### {label}\n\n{path.read_text(encoding='utf-8').strip()}\n")
        else:
            rel = path.name if path.parent == Path(report_dir) else str(path)
            body.append(f"- {label}: [{path.name}]({rel})")
    return ("Source accuracy of the zoo", "\n".join(body)) if body else None


#: the title of the report section that names the mixed or incomplete ground-truth cells
INTEGRITY_TITLE = "Ground-truth cells that mix runs or lack runs"


def integrity_section(cells: pd.DataFrame) -> tuple[str, str] | None:
    """The report section naming each (target, shots) cell that is not ``ok`` in ``cells``
    (:func:`core.results.classify_cells`), or None when every cell is.

    A mixed cell's ground truth compares entries fine-tuned with different recipes, precisions or
    code; an incomplete one compares entries over unequal lr x seed grids (fewer lrs or seeds bias
    the best-lr mean). Its metrics are reported all the same (``analysis.strict=true`` refuses).
    """
    bad = cells[cells["status"] != "ok"]
    if bad.empty:
        return None
    rows = [
        [
            str(r.target),
            str(r.shots),
            str(r.status),
            f"{r.n_lrs} x {r.n_seeds}",
            str(r.mixed).replace("|", "/") or "-",
            str(r.incomplete) or "-",
        ]
        for r in bad.itertuples(index=False)
    ]
    body = (
        f"{len(bad)} of {len(cells)} (target, shots) cells have a ground truth that combines runs "
        "from different settings, precision or code, or entries with fewer runs than the cell's "
        "lr x seed grid (the union of the lrs and seeds run there). Their metrics below are "
        "computed all the same; rerun the stale or missing runs, or set `analysis.strict=true` to "
        "refuse such cells.\n\n"
        + markdown_table(
            [
                "target",
                "shots",
                "status",
                "grid (lrs x seeds)",
                "differs in",
                "entries short of it",
            ],
            rows,
        )
    )
    return INTEGRITY_TITLE, body
