"""generate: answer questions from retrieved chunks with a generator LM (rag).

    python -m stages.generate <task> [--params params.yaml] [--set select=<name>]
"""
from pipelines.core.stage import main

if __name__ == "__main__":
    main("generate")
