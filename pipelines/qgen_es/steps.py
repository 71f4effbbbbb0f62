"""Stage table of qgen_es: the data stages live in prep.py (data.py holds the task logic)."""
from pipelines.core.stage import DEFAULT_STAGES

STAGES = {**DEFAULT_STAGES, "download": "prep:download", "clean": "prep:clean", "split": "prep:split"}
