"""retrieve: rank chunks for every question with every retriever variant (rag).

    python -m stages.retrieve <task> [--params params.yaml] [--set select=<name>]
"""
from pipelines.core.stage import main

if __name__ == "__main__":
    main("retrieve")
