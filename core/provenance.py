"""Where a job keeps its own composed config and log, and how an artefact points back at it.

Hydra writes each job's composed config (``.hydra/config.yaml``, ``overrides.yaml``) and log into
its output folder. ``configs/hydra/default.yaml`` names that folder by the job's start time and
:func:`job_tag`, so no two jobs share one, also when they start in the same second or run at once
on a cluster::

    <out_dir>/logs/<job name>/<YYYY-mm-dd_HH-MM-SS>_<job tag>/              a single run
    <out_dir>/logs/<job name>-multirun/<YYYY-mm-dd_HH-MM-SS>_<job tag>/<n>/ job n of a multirun

Every artefact a job writes (a fine-tuning result, a score table, an expert card) records
:func:`job_dir`, the absolute path of that folder, so the exact config and log behind it can be
found again.
"""

from __future__ import annotations

import os
import secrets

from omegaconf import OmegaConf

__all__ = ["JOB_TAG_RESOLVER", "job_dir", "job_tag", "register_resolvers"]

#: the OmegaConf resolver behind ``${zoobench.job_tag:}`` in configs/hydra/default.yaml
JOB_TAG_RESOLVER = "zoobench.job_tag"


def job_tag() -> str:
    """``<SLURM job id or 'local'>-<process id>-<6 random hex digits>``.

    The SLURM job id tells cluster jobs apart, the process id the processes of one machine, and the
    random part two machines sharing a folder (or a reused process id).
    """
    slurm = os.environ.get("SLURM_JOB_ID") or "local"
    return f"{slurm}-{os.getpid()}-{secrets.token_hex(3)}"


def register_resolvers() -> None:
    """Register ``${zoobench.job_tag:}``. Its value is cached in the config that resolves it: a
    multirun's jobs (which Hydra composes from a copy of the launcher's resolver cache, also on
    SLURM nodes) share the launcher's folder, while two separately composed configs get two tags."""
    OmegaConf.register_new_resolver(JOB_TAG_RESOLVER, job_tag, use_cache=True, replace=True)


def job_dir() -> str | None:
    """The absolute output folder of the running Hydra job (``hydra.runtime.output_dir``), or None
    outside a Hydra job (a function called directly, a test composing its own config)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    out = HydraConfig.get().runtime.output_dir
    return None if out is None else str(out)


register_resolvers()
