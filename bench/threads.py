"""Training-step and inference time per thread count, side by side (run on demand).

    python bench/threads.py [--model minilm] [--steps 20] [--threads 1 2]

Each thread count runs in its own process (OMP/MKL pools are fixed at import). Prints
seconds per LoRA training step (batch 16 of real reviews, length-grouped) and per
inference batch, and the ratio to the first thread count. Informs `runtime.threads`.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from peft import LoraConfig, get_peft_model
path, steps = sys.argv[1], int(sys.argv[2])
texts = [json.loads(l)["text"] for l in open(sys.argv[3])][:16 * steps]
tok = AutoTokenizer.from_pretrained(path)
model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
mt = model.config.model_type
targets = {"bert": ["query", "key", "value"], "mpnet": ["q", "k", "v"]}[mt]
model = get_peft_model(model, LoraConfig(task_type="SEQ_CLS", r=8, lora_alpha=16, target_modules=targets))
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
batches = [texts[i:i + 16] for i in range(0, len(texts), 16)]
batches = [sorted(b, key=len) for b in batches]
def step(b):
    enc = tok(b, truncation=True, max_length=256, padding=True, return_tensors="pt")
    out = model(**enc, labels=torch.zeros(len(b), dtype=torch.long))
    out.loss.backward(); opt.step(); opt.zero_grad()
step(batches[0])
t = time.perf_counter()
for b in batches[1:]:
    step(b)
train = (time.perf_counter() - t) / (len(batches) - 1)
model.eval()
t = time.perf_counter()
with torch.inference_mode():
    for b in batches:
        model(**tok(b, truncation=True, max_length=256, padding=True, return_tensors="pt"))
infer = (time.perf_counter() - t) / len(batches)
print(json.dumps({"threads": torch.get_num_threads(), "train_step_s": train, "infer_batch_s": infer}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    a = ap.parse_args()
    data = ROOT / "data/sentiment/split/train.jsonl"
    if not data.exists():
        sys.exit("run `dvc repro sentiment_split` first (the benchmark uses the real train split)")
    rows = []
    for n in a.threads:
        env = {**os.environ, "OMP_NUM_THREADS": str(n), "MKL_NUM_THREADS": str(n), "HF_HUB_OFFLINE": "1"}
        out = subprocess.run([sys.executable, "-c", CHILD, str(ROOT / "models/base" / a.model), str(a.steps), str(data)],
                             env=env, capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    base = rows[0]
    print(f"model={a.model} steps={a.steps} (batch 16, real reviews, max_length 256)")
    print(f"{'threads':>7} {'train s/step':>13} {'ratio':>6} {'infer s/batch':>14} {'ratio':>6}")
    for r in rows:
        print(f"{r['threads']:>7} {r['train_step_s']:>13.3f} {r['train_step_s'] / base['train_step_s']:>6.2f} "
              f"{r['infer_batch_s']:>14.3f} {r['infer_batch_s'] / base['infer_batch_s']:>6.2f}")


if __name__ == "__main__":
    main()
