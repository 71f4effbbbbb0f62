"""sentiment: LoRA sequence classification of Steam reviews vs prompting and TF-IDF baselines."""
