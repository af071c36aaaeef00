"""Judge the rankings: metrics, tables, figures and report (benchmark outputs or your own CSVs)."""

import hydra
from omegaconf import DictConfig

import core.config  # noqa: F401  (registers the config schemas)


@hydra.main(version_base="1.3", config_path="configs", config_name="analyze")
def main(cfg: DictConfig) -> None:
    from analysis.main import analyze_main

    analyze_main(cfg)


if __name__ == "__main__":
    main()
