"""qgen_es's registry entry (see pipelines/core/registry.py)."""
from pipelines.core.registry import Metric, TaskSpec, train_eval_stages

SPEC = TaskSpec(
    name="qgen_es",
    package=__package__,
    schema="config:QgenEsConfig",
    stages=train_eval_stages(),
    test_metric=Metric("eval.json", ("test", "count_ok")),
    validation_metric=Metric("train_summary.json", ("val_loss",), folder="models", goal="min"),
    key_metrics=(("format valid", "test.format_valid"), ("grounding", "test.grounding"),
                 ("ROUGE-L", "test.rouge_l"), ("near-duplicate rate", "test.near_duplicate_rate"),
                 ("inputs", "test.n")),
    order=40,
)
