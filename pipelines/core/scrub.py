"""The one scrubber: what every writer of configs (run_info.json, Hydra run params, W&B config,
reports) passes its config or text through.

It masks string values of secret-named keys and any text holding the value of a secret
environment variable. Those values are captured when this module is first imported (the stage
runner and `pipelines.run` import it before anything else runs), because tracking drops
WANDB_API_KEY from the environment for offline runs: masking that looked at the environment only
when writing would no longer see the key that `${oc.env:WANDB_API_KEY}` already put in the config.
"""
from __future__ import annotations

import html
import os
import re
from typing import Any

MASK = "***"
# Config keys whose string values are masked, matched by whole words of the key name, so that
# `hub_token`, `api_key` or `password` are masked but `model.key` (a model name) and
# `max_new_tokens` are not.
SECRET_WORDS = {"token", "secret", "password", "passwd", "apikey", "credential", "credentials", "auth"}
SECRET_ENV = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.I)
MIN_LEN = 8  # shorter values ("1", "true") would mask ordinary words


def _env_secrets(env: dict[str, str]) -> set[str]:
    return {v for k, v in env.items() if SECRET_ENV.search(k) and len(v) >= MIN_LEN}


_AT_START = _env_secrets(dict(os.environ))


def secret_name(name: str) -> bool:
    words = [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]
    # "<something>_key" (api_key, access_key, private_key) is a secret; a bare "key" is a registry name
    return bool(SECRET_WORDS.intersection(words)) or (len(words) > 1 and words[-1] == "key")


def secret_values() -> list[str]:
    """Values of secret environment variables: those at process start and any set since; longest
    first, so a secret holding another is masked whole."""
    return sorted(_AT_START | _env_secrets(dict(os.environ)), key=len, reverse=True)


def holds_secret(text: str, secrets: list[str] | None = None) -> bool:
    return any(s in text for s in (secret_values() if secrets is None else secrets))


def scrub_text(text: str, secrets: list[str] | None = None) -> str:
    """`text` with every secret value (and its HTML-escaped form) replaced by ***."""
    for s in secret_values() if secrets is None else secrets:
        text = text.replace(s, MASK)
        escaped = html.escape(s)
        if escaped != s:
            text = text.replace(escaped, MASK)
    return text


def scrub(obj: Any, secrets: list[str] | None = None) -> Any:
    """A plain config (dicts, lists, scalars) as it may be written: secret-named string values and
    any text holding a secret value (e.g. through `${oc.env:WANDB_API_KEY}`) become ***."""
    secrets = secret_values() if secrets is None else secrets
    if isinstance(obj, dict):
        return {k: (MASK if secret_name(str(k)) and isinstance(v, str) and v else scrub(v, secrets))
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [scrub(v, secrets) for v in obj]
    if isinstance(obj, str):
        return scrub_text(obj, secrets)
    return obj
