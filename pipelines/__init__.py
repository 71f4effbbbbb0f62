"""tunedag: reproducible fine-tuning and evaluation pipelines (one package per task family)."""
