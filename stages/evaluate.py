"""evaluate: metrics of the fine-tuned model on the test split and extra sets.

    python -m stages.evaluate <task> [--params params.yaml]
"""
from pipelines.core.stage import main

if __name__ == "__main__":
    main("evaluate")
