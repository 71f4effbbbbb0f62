"""Every shipped config composes and validates; typos and wrong types fail with a clear error;
params.yaml is in sync with conf/."""
from __future__ import annotations

import dataclasses
import re

import pytest
import yaml
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ValidationError

from pipelines.core.config import CONF_DIR, PARAMS_FILE, PROJECT_ROOT, TASKS, compose, load_task_block, task_schema, validate
from pipelines.core.errors import PipelineError
from pipelines.core.params import render

# experiment presets override several groups at once; they are composed in their own test
GROUPS = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir() and p.name not in ("task", "experiment", "hydra"))


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def test_tasks_registered_match_conf():
    assert sorted(TASKS) == _options("task")


@pytest.mark.parametrize("task", sorted(TASKS))
def test_task_default_composes(task):
    cfg = compose(task)
    assert cfg.task.name == task
    validate(task, cfg, "composed")


def _fits(task: str, group: str, option: str) -> bool:
    """An option belongs to a task when its keys are fields of the task's schema for that group
    (data options are task-specific: a SQuAD file has no label column)."""
    schema = task_schema(task)
    field = {f.name: f for f in dataclasses.fields(schema)}.get(group)
    if field is None:
        return False
    group_cls = type(field.default_factory()) if field.default_factory is not dataclasses.MISSING else None
    text = (CONF_DIR / group / f"{option}.yaml").read_text()
    keys = set(yaml.safe_load(text) or {})
    if "@package _global_" in text:  # e.g. peft=qlora also sets model.quantization
        return keys <= {f.name for f in dataclasses.fields(schema)}
    return group_cls is None or not dataclasses.is_dataclass(group_cls) or keys <= {f.name for f in dataclasses.fields(group_cls)}


# every option of every group composes with every task it belongs to ...
CASES = [(t, g, o) for t in sorted(TASKS) for g in GROUPS for o in _options(g) if _fits(t, g, o)]
# ... and composing it with another task fails at compose time, naming a key
MISFITS = [(t, g, o) for t in sorted(TASKS) for g in GROUPS for o in _options(g) if not _fits(t, g, o)]


@pytest.mark.parametrize("task,group,option", CASES, ids=[f"{t}-{g}={o}" for t, g, o in CASES])
def test_every_option_composes(task, group, option):
    cfg = compose(task, [f"{group}={option}"])
    validate(task, cfg, "composed")


@pytest.mark.parametrize("task,group,option", MISFITS, ids=[f"{t}-{g}={o}" for t, g, o in MISFITS])
def test_option_of_another_task_fails_clearly(task, group, option):
    with pytest.raises(ConfigCompositionException) as e:
        compose(task, [f"{group}={option}"])
    msg = str(e.value)
    if "No match in the defaults list" in msg:  # a group this task does not use at all (prompt for encoders)
        assert f"Could not override '{group}'" in msg, msg
        return
    assert f"data/{option}" in msg or f"{group}/{option}" in msg
    assert re.search(r"Key '\w+' not in '\w+'", msg), msg


def test_every_option_belongs_to_some_task():
    for g in GROUPS:
        for o in _options(g):
            assert any(_fits(t, g, o) for t in TASKS), f"{g}/{o}.yaml fits no task schema"


def test_model_option_files_name_their_key():
    for path in (CONF_DIR / "model").glob("*.yaml"):
        assert yaml.safe_load(path.read_text())["key"] == path.stem, path


def test_typo_key_fails_at_compose():
    with pytest.raises(ConfigCompositionException) as e:
        compose("sentiment", ["peft.rank=4"])
    assert "rank" in str(e.value)


def test_wrong_type_fails_at_compose():
    with pytest.raises((ConfigCompositionException, ValidationError)) as e:
        compose("sentiment", ["peft.r=four"])
    assert "r" in str(e.value) and "four" in str(e.value)


def test_unknown_group_option_fails():
    with pytest.raises(ConfigCompositionException) as e:
        compose("sentiment", ["model=no-such-model"])
    assert "no-such-model" in str(e.value)


def test_params_block_validation_names_the_key(tmp_path):
    block = yaml.safe_load(PARAMS_FILE.read_text())["sentiment"]
    block["train"]["learning_rat"] = 0.1
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump({"sentiment": block}))
    with pytest.raises(PipelineError) as e:
        load_task_block("sentiment", p)
    assert "learning_rat" in str(e.value) and str(p) in str(e.value)
    block["train"].pop("learning_rat")
    block["train"]["batch_size"] = "sixteen"
    p.write_text(yaml.safe_dump({"sentiment": block}))
    with pytest.raises(PipelineError) as e:
        load_task_block("sentiment", p)
    assert "batch_size" in str(e.value)


def test_params_yaml_in_sync_with_conf():
    assert PARAMS_FILE.read_text() == render(), "params.yaml is stale: run `python -m pipelines.core.params`"


def test_params_check_command_detects_drift(tmp_path, monkeypatch):
    import pipelines.core.params as params_mod

    stale = tmp_path / "params.yaml"
    stale.write_text(render().replace("r: 8", "r: 9", 1))
    monkeypatch.setattr(params_mod, "PARAMS_FILE", stale)
    assert params_mod.main(["--check"]) == 1
    stale.write_text(render())
    assert params_mod.main(["--check"]) == 0


def test_dvc_yaml_stage_params_exist_in_params_yaml():
    """Every params key a DVC stage declares exists (a renamed key would silently untrack it)."""
    params = yaml.safe_load(PARAMS_FILE.read_text())
    stages = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())["stages"]
    for name, st in stages.items():
        for key in st.get("params", []):
            node = params
            for part in key.split("."):
                assert isinstance(node, dict) and part in node, f"{name}: params key {key} missing"
                node = node[part]


# experiment presets are written for some task families
EXPERIMENT_TASKS = {"llama31_8b_qlora": ["instruct", "qgen_es"], "llama31_70b_qlora_fsdp": ["instruct", "qgen_es"],
                    "rag_study_hub": ["rag"], "qgen_es_qwen": ["qgen_es"]}


def test_every_experiment_preset_is_tested():
    assert set(_options("experiment")) == set(EXPERIMENT_TASKS)


@pytest.mark.parametrize("experiment,task", [(e, t) for e, ts in EXPERIMENT_TASKS.items() for t in ts])
def test_experiment_presets_compose(task, experiment):
    cfg = compose(task, [f"experiment={experiment}"])
    validate(task, cfg, "composed")
    if experiment == "llama31_8b_qlora":
        assert cfg.model.hub_id == "meta-llama/Llama-3.1-8B-Instruct" and cfg.peft.method == "qlora"
        q = cfg.model.quantization
        assert q.load_in_4bit and q.bnb_4bit_quant_type == "nf4" and q.bnb_4bit_use_double_quant
        assert q.bnb_4bit_compute_dtype == "bfloat16" and cfg.sft.gradient_checkpointing
    if experiment == "qgen_es_qwen":  # the packaged fluent generator, a generation budget for its tokenizer
        assert cfg.model.key == "qwen2.5-coder-0.5b" and cfg.model.source == "package"
        assert cfg.evaluate.generation.max_new_tokens == 160
    if experiment == "rag_study_hub":
        hub = {cfg.embedders[e.embedder].hub_id for e in cfg.embeddings.values()}
        assert {"sentence-transformers/paraphrase-multilingual-mpnet-base-v2", "jinaai/jina-embeddings-v2-base-es"} <= hub
        # trust_remote_code only where the model config says so
        assert [k for k, m in cfg.embedders.items() if m.trust_remote_code] == ["jina-es"]
        assert not cfg.model.trust_remote_code and cfg.run.top_k == 7


@pytest.mark.parametrize("preset,target", [("parallel", "JoblibLauncher"), ("slurm", "SlurmLauncher")])
def test_hydra_launcher_presets_compose(preset, target, monkeypatch):
    """conf/hydra/launcher/: the sweep launchers (plugins hydra-joblib-launcher, hydra-submitit-launcher)."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from pipelines.core.config import register_schemas

    monkeypatch.setenv("SLURM_PARTITION", "gpu")
    register_schemas()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose(config_name="config", overrides=["task=sentiment", f"hydra/launcher={preset}"],
                            return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith(target)
    if preset == "slurm":
        assert launcher.partition == "gpu" and launcher.gpus_per_node == 1 and launcher.max_num_timeout > 0
    else:
        assert launcher.n_jobs == 2
