"""Small shared core: config schema, I/O, model loading, tracking, metrics, stage runner."""
