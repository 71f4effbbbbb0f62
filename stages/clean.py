"""clean: normalise and filter the raw data.

    python -m stages.clean <task> [--params params.yaml]
"""
from pipelines.core.stage import main

if __name__ == "__main__":
    main("clean")
