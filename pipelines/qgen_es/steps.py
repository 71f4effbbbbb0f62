"""Stage table of qgen_es: the default layout (data.py: download/clean/split, model.py: the rest)."""
from pipelines.core.stage import DEFAULT_STAGES

STAGES = dict(DEFAULT_STAGES)
