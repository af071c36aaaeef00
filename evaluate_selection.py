"""Score every zoo entry with a selection method and judge the ranking against the ground truth."""

import hydra
from omegaconf import DictConfig

import core.config  # noqa: F401  (registers the config schemas)


@hydra.main(version_base="1.3", config_path="configs", config_name="evaluate_selection")
def main(cfg: DictConfig) -> None:
    from selection.evaluate import evaluate_selection_main

    evaluate_selection_main(cfg)


if __name__ == "__main__":
    main()
