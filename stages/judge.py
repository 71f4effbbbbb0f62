"""judge: read generated outputs item by item with checks a person would make (qgen_es: Spanish
word validity, answerability by the extractive_qa model, statement support, diversity).

    python -m stages.judge <task> [--params params.yaml]
"""
from pipelines.core.stage import main

if __name__ == "__main__":
    main("judge")
