"""instruct's registry entry (see pipelines/core/registry.py)."""
from pipelines.core.registry import Metric, TaskSpec, train_eval_stages

SPEC = TaskSpec(
    name="instruct",
    package=__package__,
    schema="config:InstructConfig",
    stages=train_eval_stages(),
    test_metric=Metric("eval.json", ("test", "rouge_l")),
    validation_metric=Metric("train_summary.json", ("val_loss",), folder="models", goal="min"),
    key_metrics=(("test token F1", "test.token_f1"), ("test perplexity", "test.perplexity"),
                 ("EOS rate", "test.eos_rate"), ("answers generated", "test.n_generated")),
    order=30,
)
