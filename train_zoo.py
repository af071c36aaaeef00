"""Train the zoo: one expert, or every expert of the zoo config not yet in the store."""

import hydra
from omegaconf import DictConfig

import core.config  # noqa: F401  (registers the config schemas)


@hydra.main(version_base="1.3", config_path="configs", config_name="train_zoo")
def main(cfg: DictConfig) -> None:
    from zoo.train import train_zoo_main

    train_zoo_main(cfg)


if __name__ == "__main__":
    main()
