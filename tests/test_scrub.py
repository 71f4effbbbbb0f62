"""The one scrubber (pipelines/core/scrub.py): secret-named keys, and secret environment values
captured at process start, so a key dropped from the environment later is still masked."""
from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import PROJECT_ROOT

from pipelines.core import scrub

pytestmark = pytest.mark.fast


def test_secret_names_and_values_are_masked(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_" + "x" * 30)
    cfg = {"model": {"key": "minilm", "hub_token": "abc", "max_new_tokens": 8, "api_key": ""},
           "notes": ["see hf_" + "x" * 30], "sft": {"distinct_pad_token": True}, "n": 3}
    assert scrub.scrub(cfg) == {"model": {"key": "minilm", "hub_token": "***", "max_new_tokens": 8, "api_key": ""},
                                "notes": ["see ***"], "sft": {"distinct_pad_token": True}, "n": 3}


def test_short_values_and_innocent_names_are_kept(monkeypatch):
    monkeypatch.setenv("SOME_KEY", "1")  # too short to mask without masking ordinary text
    assert scrub.scrub({"model": {"key": "1"}, "monkey": "a", "keyboard": "b"}) == \
        {"model": {"key": "1"}, "monkey": "a", "keyboard": "b"}


def test_html_escaped_form_is_masked_too():
    secret = "abc<def>&ghi'123"
    assert scrub.scrub_text("<p>abc&lt;def&gt;&amp;ghi&#x27;123</p>", [secret]) == "<p>***</p>"


def test_value_dropped_from_the_environment_later_is_still_masked():
    """Offline tracking pops WANDB_API_KEY; the scrubber imported before still knows it."""
    key = "k" * 40
    code = ("import os\nfrom pipelines.core import scrub\n"
            "key = os.environ.pop('WANDB_API_KEY')\n"
            "assert scrub.scrub({'d': 'owner ' + key}) == {'d': 'owner ***'}\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          env={"WANDB_API_KEY": key, "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr


def test_tracking_keeps_the_old_names():
    from pipelines.core import tracking

    assert tracking._scrub is scrub.scrub and tracking._secret_name is scrub.secret_name
