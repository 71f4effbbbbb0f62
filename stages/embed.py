"""embed: encode chunks (and the questions) with an embedder, once per (corpus, chunking, embedder) (rag).

    python -m stages.embed <task> [--params params.yaml] [--set select=<name>]
"""
from pipelines.core.stage import main

if __name__ == "__main__":
    main("embed")
