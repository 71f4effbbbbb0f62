"""Process setup that must happen before torch is imported: threads, determinism, offline."""
from __future__ import annotations

import os
import random


def set_threads(n: int) -> None:
    # Must run before `import torch` to take effect for OpenMP/MKL pools.
    # TUNEDAG_MAX_THREADS caps the configured count when processes share the cores (parallel
    # tests, two runs at once): oversubscribed OpenMP pools spin and slow everyone down.
    cap = os.environ.get("TUNEDAG_MAX_THREADS")
    if cap:
        if not cap.strip().isdigit() or int(cap) < 1:
            from .errors import PipelineError

            raise PipelineError(f"TUNEDAG_MAX_THREADS: {cap!r} is not a whole number >= 1 (unset it for no cap)")
        n = min(n, int(cap))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


def offline_defaults() -> None:
    """No hub at run time unless the user opts in (HF_HUB_OFFLINE=0)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", os.environ["HF_HUB_OFFLINE"])
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    import numpy as np

    np.random.seed(seed)
    try:
        import torch
    except ImportError:
        return
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
