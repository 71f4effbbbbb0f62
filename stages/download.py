"""download: fetch and verify the task's data (models: see download_models in dvc.yaml).

    python -m stages.download <task> [--params params.yaml]
"""
from pipelines.core.stage import main

if __name__ == "__main__":
    main("download")
