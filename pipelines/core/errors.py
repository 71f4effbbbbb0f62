"""One error type for bad input: the stage runner prints it as one line and exits non-zero."""


class PipelineError(Exception):
    """A problem with the user's input or config, reported as `file/field: what is wrong`."""
