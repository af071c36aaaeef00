"""Rank a zoo on your own labelled images (a folder or a CSV), optionally fine-tune the top K."""

import hydra
from omegaconf import DictConfig

import core.config  # noqa: F401  (registers the config schemas)


@hydra.main(version_base="1.3", config_path="configs", config_name="select_model")
def main(cfg: DictConfig) -> None:
    from selection.select import select_model_main

    select_model_main(cfg)


if __name__ == "__main__":
    main()
