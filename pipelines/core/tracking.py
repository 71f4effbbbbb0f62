"""W&B tracking: one run per stage (job_type = stage), grouped per experiment.

Offline by default (no network; `wandb sync wandb_runs/wandb/offline-run-*` uploads later).
Only the resolved task config is logged as the run config: never environment variables.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

# Config keys whose string values are masked, matched by whole words of the key name, so that
# `hub_token`, `api_key` or `password` are masked but `model.key` (a model name) and
# `max_new_tokens` are not.
SECRET_WORDS = {"token", "secret", "password", "passwd", "apikey", "credential", "credentials", "auth"}
SECRET_ENV = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.I)


def _secret_name(name: str) -> bool:
    words = [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]
    # "<something>_key" (api_key, access_key, private_key) is a secret; a bare "key" is a registry name
    return bool(SECRET_WORDS.intersection(words)) or (len(words) > 1 and words[-1] == "key")


def _secret_values() -> list[str]:
    """Values of secret-looking environment variables (WANDB_API_KEY, HF_TOKEN, ...)."""
    return sorted({v for k, v in os.environ.items() if SECRET_ENV.search(k) and len(v) >= 8}, key=len, reverse=True)


def _scrub(obj: Any, secrets: list[str] | None = None) -> Any:
    """The config as logged: secret-named string values and any text holding the value of a
    secret environment variable (e.g. through `${oc.env:WANDB_API_KEY}`) become "***"."""
    secrets = _secret_values() if secrets is None else secrets
    if isinstance(obj, dict):
        return {k: ("***" if _secret_name(str(k)) and isinstance(v, str) and v else _scrub(v, secrets))
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [_scrub(v, secrets) for v in obj]
    if isinstance(obj, str):
        for s in secrets:
            obj = obj.replace(s, "***")
    return obj


class _NoRun:
    """Stand-in when tracking is off: same calls, nothing recorded."""

    def log(self, *a: Any, **k: Any) -> None: ...
    def finish(self) -> None: ...

    @property
    def summary(self) -> dict:
        return {}


def start(cfg: DictConfig, stage: str, run_dir: Path | None = None):
    t = cfg.tracking
    if t.backend != "wandb" or t.mode == "disabled":
        os.environ["WANDB_MODE"] = "disabled"
        return _NoRun()
    import wandb

    os.environ["WANDB_MODE"] = t.mode
    config = _scrub(OmegaConf.to_container(cfg, resolve=True))  # while the secrets are still in the env
    if t.mode == "offline":
        # An offline run needs no API key, so wandb and its service process (which inherits this
        # environment and writes debug logs into the run dir) never get to see it. wandb 0.31
        # writes no key offline anyway (tests/test_bad_inputs.py walks the run dir); this keeps
        # it that way whatever a future version logs.
        os.environ.pop("WANDB_API_KEY", None)
    wdir = Path(cfg.paths.root) / t.dir
    wdir.mkdir(parents=True, exist_ok=True)
    return wandb.init(
        project=t.project,
        entity=t.entity,
        group=t.group,
        job_type=stage,
        name=f"{cfg.task.name}-{stage}",
        tags=list(t.tags) + [cfg.task.name],
        dir=str(wdir),
        mode=t.mode,
        config=config,
        reinit="finish_previous",
        settings=wandb.Settings(console="off", x_disable_stats=True, x_disable_meta=True),
    )
