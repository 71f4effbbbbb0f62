"""chunk: cut a task's cleaned corpus into chunks (rag).

    python -m stages.chunk <task> [--params params.yaml] [--set select=<name>]
"""
from pipelines.core.stage import main

if __name__ == "__main__":
    main("chunk")
