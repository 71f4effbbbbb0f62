"""finetune: PEFT/LoRA or full fine-tuning with the HF Trainer.

    python -m stages.finetune <task> [--params params.yaml]
"""
from pipelines.core.stage import main

if __name__ == "__main__":
    main("finetune")
