"""Stage name -> "module:function" of the sentiment task.

`pipelines.core.stage` imports the module only when its stage runs, so each stage pays only
for what it uses.
"""
STAGES = {
    "download": "data:download",
    "clean": "data:clean",
    "split": "data:split",
    "tokenize": "model:tokenize",
    "finetune": "model:finetune",
    "evaluate": "model:evaluate",
    "baselines": "baselines:baselines",
    "report": "report:report",
}
