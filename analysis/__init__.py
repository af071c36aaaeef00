"""Judging rankings: ranking metrics, tables, figures, the report and the wandb dashboard.

The package reads only result tables (the fine-tuning ground truth and the selection scores), never
models or data:

- :mod:`analysis.metrics`: pure per-cell metrics (top-k gain, trials-to-best, correlations, Random's
  exact expectations), the long metrics table, bootstrap means, the cost table;
- :mod:`analysis.tables`: reading the benchmark's tables, the ground truth from runs, merges
  (per-draw judging), the multi-domain view;
- :mod:`analysis.ceiling`: the noise ceiling (agreement between fine-tuning seeds' rankings);
- :mod:`analysis.validate`: checks of user-given tables (:class:`~analysis.validate.InputTableError`);
- :mod:`analysis.compute`: every derived table of one analysis (:class:`~analysis.compute.Analysis`);
- :mod:`analysis.findings`: the plain-language findings of report.md;
- :mod:`analysis.figures`, :mod:`analysis.report`: PNG figures, CSV/Markdown tables, report.md;
- :mod:`analysis.wandb_log`: the optional wandb run of an analysis;
- :mod:`analysis.main`: ``analyze_main(cfg)``, called by ``analyze.py``.

Nothing is imported here, so ``import analysis.metrics`` stays free of matplotlib and wandb.
"""
