"""report: the task's report section (HTML + Markdown summary).

    python -m stages.report <task> [--params params.yaml]
"""
from pipelines.core.stage import main

if __name__ == "__main__":
    main("report")
