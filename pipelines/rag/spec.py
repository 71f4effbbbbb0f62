"""rag's registry entry (see pipelines/core/registry.py): chunk/embed/retrieve/choose before the
generator's RAFT tokenize/finetune, then one generate stage per answering system."""
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
        Stage("choose", "choose:choose"),
        Stage("tokenize", "raft:tokenize"),
        Stage("finetune", "raft:finetune", launchable=True),
        Stage("generate", "answer:generate"),
        Stage("evaluate", "evaluation:evaluate", records_run_info=True),
        Stage("report", "report:report"),
    ),
    test_metric=Metric("eval.json", ("retrieval", "bash", "hit@5")),
    # the retriever is chosen on the tuning set (SQuAD-es training articles): its best hit@5 there
    validation_metric=Metric("eval.json", ("choice", "tuning", "hit@5")),
    key_metrics=(("bash MRR@10", "retrieval.bash.mrr@10"), ("SQuAD-es test hit@5", "retrieval.squad_test.hit@5"),
                 ("answer F1 (SQuAD-es test)", "answers.raft.squad_test.f1"),
                 ("cites relevant (SQuAD-es test)", "answers.raft.squad_test.cites_relevant"),
                 ("refusal on unanswerable (SQuAD-es)", "answers.raft.squad_test_negatives.refusal_on_unanswerable"),
                 ("answer F1 (bash)", "answers.raft.bash.f1"),
                 ("refusal on unanswerable (bash)", "answers.raft.bash_negatives.refusal_on_unanswerable")),
    dry_run_stage="embed",  # prints corpora, collections and embedders without loading weights
    comparison=BestOf("best", "Best retrieval of each kind", "question set / retriever",
                      (("hit@5", "hit@5"), ("MRR@10", "mrr@10"), ("variant", "variant"))),
    order=50,
)
