"""rag's registry entry (see pipelines/core/registry.py): no training; chunk/embed/retrieve/generate
replace tokenize/finetune."""
from pipelines.core.registry import BestOf, Metric, Stage, TaskSpec

SPEC = TaskSpec(
    name="rag",
    package=__package__,
    schema="config:RagConfig",
    # every chunking and embedding of the config, then retrieval of all variants at once
    stages=(
        Stage("download", "prep:download"),
        Stage("clean", "prep:clean"),
        Stage("chunk", "prep:chunk"),
        Stage("embed", "index:embed"),
        Stage("retrieve", "index:retrieve"),
        Stage("generate", "answer:generate"),
        Stage("evaluate", "evaluation:evaluate", records_run_info=True),
        Stage("report", "report:report"),
    ),
    test_metric=Metric("eval.json", ("retrieval", "bash", "hit@5")),
    # its question sets are all test sets: nothing to tune on without looking at them
    validation_metric=None,
    key_metrics=(("bash MRR@10", "retrieval.bash.mrr@10"), ("bash nDCG@10", "retrieval.bash.ndcg@10"),
                 ("answer F1 (bash)", "answers.bash.f1"), ("citations valid", "answers.bash.citation_valid"),
                 ("refusal on unanswerable", "answers.bash_negatives.refusal_on_unanswerable")),
    dry_run_stage="embed",  # prints corpora, collections and embedders without loading weights
    comparison=BestOf("best", "Best retrieval of each kind", "question set / retriever",
                      (("hit@5", "hit@5"), ("MRR@10", "mrr@10"), ("variant", "variant"))),
    order=50,
)
