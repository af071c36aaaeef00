"""Fine-tuning ground truth.

- :mod:`finetune.run`: one run (``finetune_run``) and its result file;
- :mod:`finetune.sweep`: planning and running sweeps (``finetune_main`` behind ``finetune.py``);
- :mod:`finetune.collect`: the result tables (``collect``, ``ground_truth``, ``cost_table``).
"""
