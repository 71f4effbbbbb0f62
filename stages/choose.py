"""choose: pick a headline variant on a tuning set only (rag: the retriever and top-k).

    python -m stages.choose <task> [--params params.yaml]
"""
from pipelines.core.stage import main

if __name__ == "__main__":
    main("choose")
