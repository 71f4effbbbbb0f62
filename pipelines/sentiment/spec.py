"""sentiment's registry entry (see pipelines/core/registry.py)."""
from pipelines.core.registry import Metric, TaskSpec, train_eval_stages

SPEC = TaskSpec(
    name="sentiment",
    package=__package__,
    schema="config:SentimentConfig",
    stages=train_eval_stages(),
    test_metric=Metric("eval.json", ("test", "macro_f1")),
    # validation macro-F1 of the checkpoint kept (train.metric_for_best: eval_macro_f1)
    validation_metric=Metric("train_summary.json", ("best_checkpoint_metric",), folder="models"),
    key_metrics=(("test accuracy", "test.accuracy"), ("test examples", "test.n"),
                 ("probe reviews macro-F1", "extra.probe_reviews.macro_f1")),
    order=10,
)
