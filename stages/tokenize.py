"""tokenize: batched fast tokenisation, no padding (dynamic padding at collate time).

    python -m stages.tokenize <task> [--params params.yaml]
"""
from pipelines.core.stage import main

if __name__ == "__main__":
    main("tokenize")
