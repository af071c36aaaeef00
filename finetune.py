"""Fine-tune zoo entries on a target: one run, one (target, shots) cell, or the whole sweep."""

import hydra
from omegaconf import DictConfig

import core.config  # noqa: F401  (registers the config schemas)


@hydra.main(version_base="1.3", config_path="configs", config_name="finetune")
def main(cfg: DictConfig) -> None:
    from finetune.sweep import finetune_main

    finetune_main(cfg)


if __name__ == "__main__":
    main()
