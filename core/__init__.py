"""The bottom layer every package may import (it imports none of them).

- :mod:`core.io`: atomic writes, JSON, the restricted data unpickler, config hashes, git revision;
- :mod:`core.devices`: the device and precision of a job;
- :mod:`core.tracking`: the wandb mode and the one wandb run context of every stage;
- :mod:`core.config`: the typed settings of every component, registered as Hydra schemas;
- :mod:`core.keys`: shots, learning rates, entry ids and the columns of the result tables;
- :mod:`core.ground_truth`: the best lr of the seed mean, the benchmark's ground truth;
- :mod:`core.cards`: where the zoo's expert cards lie and how to read them.
"""
