"""qgen_es's registry entry (see pipelines/core/registry.py): the train/eval stages, then judge
(every mode's items read for word validity, answerability and support) before the report."""
from pipelines.core.registry import BestOf, Metric, Stage, TaskSpec, train_eval_stages

_STAGES = train_eval_stages()

SPEC = TaskSpec(
    name="qgen_es",
    package=__package__,
    schema="config:QgenEsConfig",
    stages=(*_STAGES[:-1], Stage("judge", "judge:judge"), _STAGES[-1]),
    # the share of generated items a teacher could use: all words valid and answerable/supported
    test_metric=Metric("quality.json", ("modes", "fine_tuned", "usable")),
    validation_metric=Metric("train_summary.json", ("val_loss",), folder="models", goal="min"),
    key_metrics=(("count exact", "modes.fine_tuned.count_ok"), ("T/F count exact", "modes.fine_tuned.tf_ok"),
                 ("items with all words valid", "modes.fine_tuned.items_all_valid"),
                 ("reference questions, all words valid", "reference.items_all_valid"),
                 ("short questions answerable", "modes.fine_tuned.answerable"),
                 ("statements supported", "modes.fine_tuned.statements_supported"),
                 ("near-duplicate rate", "modes.fine_tuned.near_duplicate_rate"),
                 ("terminated", "modes.fine_tuned.terminated"),
                 ("usable vs hand ratings (agreement)", "hand_ratings.agreement"), ("inputs", "inputs")),
    comparison=BestOf("modes", "Every mode on the same held-out inputs", "mode",
                      (("usable", "usable"), ("all words valid", "items_all_valid"), ("answerable", "answerable"),
                       ("statements supported", "statements_supported"), ("count exact", "count_ok"),
                       ("terminated", "terminated"))),
    order=40,
)
