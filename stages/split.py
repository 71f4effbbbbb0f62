"""split: seeded train/val/test split.

    python -m stages.split <task> [--params params.yaml]
"""
from pipelines.core.stage import main

if __name__ == "__main__":
    main("split")
