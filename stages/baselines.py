"""baselines: the task's baselines (prompting, classic) on the same test split.

    python -m stages.baselines <task> [--params params.yaml]
"""
from pipelines.core.stage import main

if __name__ == "__main__":
    main("baselines")
