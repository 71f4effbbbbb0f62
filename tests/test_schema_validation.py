"""The schema is the one source of defaults and allowed values (issue 17, item 4).

Constraints are declared at the dataclass fields (`choice`, `choices`, `bounded` in
pipelines/core/schema.py) and checked by `config.validate`, which every route passes (params.yaml,
`--set`, Hydra-composed configs). Here: each declared constraint rejects a value outside it and
accepts its edges, the YAML-boolean message, and the dataclass defaults agree with conf/.
"""
from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import yaml
from omegaconf import OmegaConf

from pipelines.core import schema
from pipelines.core.config import CONF_DIR, PARAMS_FILE, TASKS, _constraint_problem, _field_checks, compose, task_schema, validate
from pipelines.core.errors import PipelineError

pytestmark = pytest.mark.fast

BLOCKS = yaml.safe_load(PARAMS_FILE.read_text())


def edited(task: str, dotted: str, value) -> dict:
    block = copy.deepcopy(BLOCKS[task])
    *parents, last = dotted.split(".")
    node = block
    for p in parents:
        node = node[p]
    node[last] = value
    return block


def error(task: str, dotted: str, value) -> str:
    with pytest.raises(PipelineError) as e:
        validate(task, edited(task, dotted, value), "params.yaml")
    return str(e.value)


def accepted(task: str, dotted: str, value) -> None:
    validate(task, edited(task, dotted, value), "params.yaml")


# ------------------------------------------------------------ the cases of the issue, by message
@pytest.mark.parametrize("task,key,value,message", [
    ("sentiment", "train.learning_rate", -1e-3, "sentiment.train.learning_rate: must be > 0, got -0.001"),
    ("sentiment", "train.learning_rate", math.nan, "sentiment.train.learning_rate: must be > 0, got nan"),
    ("instruct", "train.learning_rate", math.inf, "instruct.train.learning_rate: must be > 0, got inf"),
    ("sentiment", "train.batch_size", 0, "sentiment.train.batch_size: must be >= 1, got 0"),
    ("qgen_es", "train.grad_accum", 0, "qgen_es.train.grad_accum: must be >= 1, got 0"),
    ("sentiment", "train.scheduler", "cosin", "sentiment.train.scheduler: 'cosin' is not one of linear, cosine,"),
    ("sentiment", "train.eval_strategy", "epochs", "sentiment.train.eval_strategy: 'epochs' is not one of epoch, steps, no"),
    ("sentiment", "train.eval_strategy", False,
     'sentiment.train.eval_strategy: got false (YAML reads no/off/yes/on as booleans: quote it, "no")'),
    ("sentiment", "peft.lora_dropout", 1.5, "sentiment.peft.lora_dropout: must be >= 0 and < 1, got 1.5"),
    ("extractive_qa", "evaluate.n_best", 0, "extractive_qa.evaluate.n_best: must be >= 1, got 0"),
    ("instruct", "data.limit", 0, "instruct.data.limit: must be >= 1, got 0"),
    ("qgen_es", "data.limit", -1, "qgen_es.data.limit: must be >= 1, got -1"),
    ("sentiment", "train.warmup_ratio", 1.2, "sentiment.train.warmup_ratio: must be >= 0 and <= 1, got 1.2"),
    ("sentiment", "peft.r", 0, "sentiment.peft.r: must be >= 1, got 0"),
    ("sentiment", "train.epochs", -1, "sentiment.train.epochs: must be >= 0, got -1"),
    ("sentiment", "peft.method", "lora2", "sentiment.peft.method: 'lora2' is not one of lora, qlora, full"),
    ("instruct", "prompt.format", "chatml", "instruct.prompt.format: 'chatml' is not one of alpaca, chat, phi3"),
    ("sentiment", "tracking.mode", "ofline", "sentiment.tracking.mode: 'ofline' is not one of offline, online, disabled"),
    ("instruct", "model.source", "carrier-pigeon", "instruct.model.source: 'carrier-pigeon' is not one of package, hub, path"),
    # a list field: each element; a dict field: each value
    ("rag", "retrieve.similarities", ["cosine", "manhattan"],
     "rag.retrieve.similarities[1]: 'manhattan' is not one of cosine, euclidean, dot"),
    ("rag", "retrieve.ks", [1, 0], "rag.retrieve.ks[1]: must be >= 1, got 0"),
    ("sentiment", "runtime.threads", {"default": 2, "finetune": 0}, "sentiment.runtime.threads.finetune: must be >= 1, got 0"),
    # a dict of schema classes (rag collections): each item's own fields
    ("rag", "collections.bash-w300.method", "sentences",
     "rag.collections.bash-w300.method: 'sentences' is not one of words, structure, paragraph"),
    ("rag", "embedders.minilm.dtype", "fp8", "rag.embedders.minilm.dtype: 'fp8' is not one of float32, bfloat16"),
    # a subclass that only changes the default keeps its base's constraint (QgenPromptConfig.format)
    ("qgen_es", "prompt.format", "chatml", "qgen_es.prompt.format: 'chatml' is not one of alpaca, chat, phi3"),
])
def test_issue_cases_rejected_with_key_and_allowed(task, key, value, message):
    msg = error(task, key, value)
    assert msg.startswith("params.yaml: ") and message in msg, msg
    assert "\n" not in msg


def test_epochs_zero_without_max_steps_rejected_with_max_steps_accepted():
    block = edited("sentiment", "train.epochs", 0)
    block["train"]["max_steps"] = -1
    with pytest.raises(PipelineError, match=r"sentiment.train.epochs: must be > 0 unless train.max_steps > 0, got 0"):
        validate("sentiment", block, "params.yaml")
    block["train"]["max_steps"] = 5
    validate("sentiment", block, "params.yaml")


@pytest.mark.parametrize("task,key,value", [
    ("sentiment", "peft.lora_dropout", 0.0), ("sentiment", "peft.lora_dropout", 0.999),
    ("sentiment", "train.warmup_ratio", 0.0), ("sentiment", "train.warmup_ratio", 1.0),
    ("sentiment", "train.batch_size", 1), ("sentiment", "train.max_steps", -1),
    ("sentiment", "train.eval_strategy", "no"), ("sentiment", "train.scheduler", "cosine_with_restarts"),
    ("instruct", "data.limit", None), ("instruct", "data.limit", 1), ("qgen_es", "data.limit", None),
    ("extractive_qa", "evaluate.n_best", 1), ("rag", "run.alpha", 0.0), ("rag", "run.alpha", 1.0),
    ("instruct", "evaluate.generation.dtype", None), ("instruct", "evaluate.generation.dtype", "float32"),
])
def test_edges_and_nulls_accepted(task, key, value):
    accepted(task, key, value)


# ------------------------------------------------------ every declared constraint, mechanically
def _declared() -> list[tuple[str, str, object]]:
    """(task, dotted key, constraint) for every constrained field reachable in a task's default config
    (dict-of-class items such as rag collections are covered through their conf/ entries)."""
    out = []
    for task in sorted(TASKS):
        cfg = OmegaConf.structured(task_schema(task))
        cfg = OmegaConf.merge(cfg, BLOCKS[task])

        def walk(node, path):
            kind = OmegaConf.get_type(node)
            checks = _field_checks(kind) if dataclasses.is_dataclass(kind) else {}
            for key in node.keys():
                where = f"{path}.{key}" if path else str(key)
                if key in checks:
                    out.append((task, where, checks[key]))
                child = node._get_node(key)
                if OmegaConf.is_dict(child) and key not in checks:
                    walk(child, where)

        walk(cfg, "")
    return out


DECLARED = _declared()


def test_every_enum_and_range_field_is_declared():
    keys = {(t, k) for t, k, _ in DECLARED}
    for needle in [("sentiment", "train.scheduler"), ("sentiment", "train.eval_strategy"), ("sentiment", "model.source"),
                   ("sentiment", "model.dtype"), ("sentiment", "peft.bias"), ("sentiment", "launcher.name"),
                   ("instruct", "prompt.format"), ("qgen_es", "data.tf_position"), ("qgen_es", "data.biography.mode"),
                   ("rag", "run.retriever"), ("rag", "retrieve.bm25.method"), ("extractive_qa", "data.format"),
                   ("extractive_qa", "evaluate.n_best"), ("sentiment", "data.split.val"), ("rag", "run.top_k")]:
        assert needle in keys, needle
    assert len(DECLARED) > 150


def _bad_value(check, current):
    if isinstance(check, schema.Choice):
        return "definitely-not-allowed"
    if check.ge is not None:
        return check.ge - 1
    if check.gt is not None:
        return check.gt if not isinstance(current, float) else check.gt - 0.5
    return (check.le if check.le is not None else check.lt) + 1


MERGED = {task: OmegaConf.merge(OmegaConf.structured(task_schema(task)), BLOCKS[task]) for task in TASKS}


def _problem_with(task: str, key: str, value) -> str | None:
    """The checker on the task's merged config with one value replaced (cheap: no re-merge; the
    full validate route and its message prefix are covered by the named cases above)."""
    cfg = MERGED[task]
    old = OmegaConf.select(cfg, key)
    old = OmegaConf.to_container(old) if OmegaConf.is_config(old) else old
    OmegaConf.update(cfg, key, value, merge=False)
    try:
        return _constraint_problem(cfg, "")
    finally:
        OmegaConf.update(cfg, key, old, merge=False)


@pytest.mark.parametrize("task,key,check", DECLARED, ids=[f"{t}-{k}" for t, k, _ in DECLARED])
def test_each_declared_constraint_rejects_and_the_default_passes(task, key, check):
    assert _constraint_problem(MERGED[task], "") is None
    current = OmegaConf.to_container(MERGED[task])
    for part in key.split("."):
        current = current[part]
    bad = _bad_value(check, current)
    if isinstance(current, list):
        bad, where = [*current, bad], f"{key}[{len(current)}]"
    elif isinstance(current, dict):
        bad, where = {**current, "extra": bad}, f"{key}.extra"
    else:
        where = key
    expect = "'definitely-not-allowed' is not one of" if isinstance(check, schema.Choice) else f"must be {check.describe()}"
    problem = _problem_with(task, key, bad)
    assert problem is not None and problem.startswith(f"{where}: {expect}"), problem
    if isinstance(check, schema.Bounds) and isinstance(current, float):
        assert _problem_with(task, key, math.nan) == f"{key}: must be {check.describe()}, got nan"


def test_choice_declarations_keep_their_default_allowed():
    for task in TASKS:
        cfg = OmegaConf.structured(task_schema(task))
        validate(task, OmegaConf.to_container(OmegaConf.merge(cfg, BLOCKS[task])), "defaults")


# -------------------------------------------------------------------------- YAML 1.1 booleans
@pytest.mark.parametrize("text,value,hint", [("no", False, '"no"'), ("off", False, '"no"'), ("yes", False, None)])
def test_yaml_boolean_in_a_string_field_says_to_quote_it(text, value, hint):
    raw = yaml.safe_load(f"eval_strategy: {text}")["eval_strategy"]
    assert isinstance(raw, bool)
    msg = error("sentiment", "train.eval_strategy", raw)
    assert f"got {str(raw).lower()} (YAML reads no/off/yes/on as booleans: quote it" in msg, msg
    if not raw:
        assert msg.endswith(f"quote it, {hint})")


def test_yaml_boolean_in_a_free_string_field_and_in_a_list():
    assert error("rag", "retrieve.bm25.stopwords", False).endswith(
        "rag.retrieve.bm25.stopwords: got false (YAML reads no/off/yes/on as booleans: quote it)")
    assert "rag.retrieve.poolings[0]: got true" in error("rag", "retrieve.poolings", [True, "max"])


def test_yaml_boolean_already_stringified_by_omegaconf_gets_the_hint():
    """Hydra / OmegaConf YAML turn `no` into False and a str field into "False" before validate."""
    cfg = compose("sentiment", ["train.eval_strategy=false"])
    assert cfg.train.eval_strategy == "False"
    with pytest.raises(PipelineError) as e:
        validate("sentiment", cfg, "composed")
    assert str(e.value) == ("composed: sentiment.train.eval_strategy: 'False' is not one of epoch, steps, no "
                            '(YAML reads no/off/yes/on as booleans: quote it, "no")')


def test_set_override_route_checks_constraints_and_booleans():
    from pipelines.core.stage import apply_overrides

    cfg = validate("sentiment", BLOCKS["sentiment"], "params.yaml")
    with pytest.raises(PipelineError, match=r"^--set train.eval_strategy=no: sentiment.train.eval_strategy: got false"):
        apply_overrides("sentiment", cfg, ["train.eval_strategy=no"])
    with pytest.raises(PipelineError, match=r"^--set train.learning_rate=\.nan: sentiment.train.learning_rate: must be > 0, got nan"):
        apply_overrides("sentiment", cfg, ["train.learning_rate=.nan"])
    assert apply_overrides("sentiment", cfg, ["train.eval_strategy='no'"]).train.eval_strategy == "no"


def test_metadata_is_invisible_to_omegaconf():
    """choice()/bounded() only add field metadata: OmegaConf builds the same node types and values."""
    cfg = OmegaConf.structured(schema.TrainConfig)
    assert cfg.eval_strategy == "epoch" and cfg.learning_rate == 1e-3
    cfg.learning_rate = -1.0  # OmegaConf itself accepts it: validate is where constraints live
    assert cfg.learning_rate == -1.0


# ------------------------------------------------------------------ defaults: one place
# conf-only: prose, and the rag task's named items (corpora, question sets, collections, embedders,
# embeddings) are data the schema only gives a shape to (its defaults for them are empty)
CONF_ONLY = ("task.description", "data.corpora.", "data.question_sets.", "collections.", "embedders.", "embeddings.")


def _leaves(d, p=""):
    if isinstance(d, dict) and d:
        for k, v in d.items():
            yield from _leaves(v, f"{p}.{k}" if p else str(k))
    else:
        yield p, d


def _option_keys(group: str, option: str, package: str) -> set[str]:
    """Dotted keys an option file of a group sets, where it lands in the task config."""
    text = (CONF_DIR / group / f"{option}.yaml").read_text()
    body = {k: v for k, v in (yaml.safe_load(text) or {}).items() if k != "defaults"}
    prefix = "" if "@package _global_" in text else package
    return {f"{prefix}.{k}" if prefix else k for k, _ in _leaves(body)}


def _sources(task: str) -> tuple[set[str], dict[str, tuple[str, bool]]]:
    """Keys the task file sets itself, and per key set by a group option: (group=option, whether
    every option of that group sets it)."""
    doc = yaml.safe_load((CONF_DIR / "task" / f"{task}.yaml").read_text())
    own = {k for k, _ in _leaves({k: v for k, v in doc.items() if k != "defaults"})}
    by_option: dict[str, tuple[str, bool]] = {}
    for entry in doc["defaults"]:
        if not isinstance(entry, dict):
            continue  # the schema and _self_
        (spec, option), = entry.items()
        group, _, package = spec.lstrip("/").partition("@")
        everyone = set.intersection(*(_option_keys(group, p.stem, package or group)
                                      for p in (CONF_DIR / group).glob("*.yaml")))
        for key in _option_keys(group, option, package or group):
            by_option[key] = (f"{group}={option}", key in everyone)
    return own, by_option


# Keys whose schema default is not the default config's value, on purpose: the default option of a
# group sets them, and another option of that group leaves them out and so gets the schema default
# (e.g. train=encoder_gpu has no bf16 / attention_dropout, train=qa_gpu no max_steps).
PER_OPTION = {
    "extractive_qa": {"train.attention_dropout", "train.bf16", "train.eval_steps", "train.max_steps"},
    "instruct": {"train.bf16", "train.early_stopping_patience", "train.logging_steps", "train.weight_decay"},
    "qgen_es": {"train.bf16", "train.early_stopping_patience", "train.logging_steps", "train.weight_decay"},
}


@pytest.mark.parametrize("task", sorted(TASKS))
def test_dataclass_defaults_agree_with_conf(task):
    """What the schema says a key defaults to is what the task's default config composes from conf/,
    except where a group option sets a value that another option of the group leaves to the default
    (PER_OPTION, checked to be exactly those)."""
    conf = dict(_leaves(OmegaConf.to_container(compose(task), resolve=False)))
    defaults = dict(_leaves(OmegaConf.to_container(OmegaConf.structured(task_schema(task)), resolve=False)))
    own, by_option = _sources(task)
    differ, per_option = {}, set()
    for k in set(conf) | set(defaults):
        d, c = defaults.get(k, "<absent>"), conf.get(k, "<absent>")
        if d == c or any(k == x.rstrip(".") or k.startswith(x) for x in CONF_ONLY):
            continue
        option, everyone = by_option.get(k, (None, True))
        if k in own or everyone:  # the schema default is never what a run gets: it must say what runs get
            differ[k] = (d, c, "conf/task" if k in own else option)
        else:
            per_option.add(k)
    assert differ == {}, f"schema default != conf/ (schema, conf, set by): {differ}"
    assert per_option == PER_OPTION.get(task, set())
    for key in CONF_ONLY[1:]:
        node = OmegaConf.select(OmegaConf.structured(task_schema(task)), key.rstrip("."))
        assert node is None or len(node) == 0, key
