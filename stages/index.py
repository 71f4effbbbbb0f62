"""report_index: one self-contained page across tasks and experiments (reports/index.html).

    python -m stages.index [--root .] [--out reports/index.html]
"""
from pipelines.core.index_report import main

if __name__ == "__main__":
    main()
