"""extractive_qa's registry entry (see pipelines/core/registry.py)."""
from pipelines.core.registry import Metric, TaskSpec, train_eval_stages

SPEC = TaskSpec(
    name="extractive_qa",
    package=__package__,
    schema="config:ExtractiveQaConfig",
    stages=train_eval_stages(),
    test_metric=Metric("eval.json", ("test", "f1")),
    # validation F1 of the checkpoint kept (train.metric_for_best: eval_f1)
    validation_metric=Metric("train_summary.json", ("best_checkpoint_metric",), folder="models"),
    key_metrics=(("test exact match", "test.exact_match"), ("test questions", "test.n")),
    order=20,
)
