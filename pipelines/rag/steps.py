"""Stage table of rag: no training; chunk/embed/retrieve/generate replace tokenize/finetune."""
STAGES = {
    "download": "prep:download",
    "clean": "prep:clean",
    "chunk": "prep:chunk",
    "embed": "index:embed",
    "retrieve": "index:retrieve",
    "generate": "answer:generate",
    "evaluate": "evaluation:evaluate",
    "report": "report:report",
}
