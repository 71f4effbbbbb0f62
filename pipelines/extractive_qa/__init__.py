"""extractive_qa: SQuAD-format span extraction with an encoder, vs an untrained encoder and a prompted LM."""
