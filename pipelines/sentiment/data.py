"""Data stages of the sentiment task: download -> clean -> split.

Outputs go under `TaskPaths(cfg).data`; every output is written atomically, and a stage first
removes its previous outputs so a failed run never leaves stale files that look current.
All randomness is seeded from `cfg.runtime.seed`: the same inputs give byte-identical files.
"""
from __future__ import annotations

import io
import re
import unicodedata
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from pipelines.core.download import download as core_download, load_hub_dataset
from pipelines.core.errors import PipelineError
from pipelines.core.io import atomic_path, read_jsonl, remove, write_json, write_jsonl
from pipelines.core.paths import TaskPaths

_WS = re.compile(r"\s+")
_ASCII = re.compile(r"[\x20-\x7e]+")
_ALNUM = re.compile(r"[A-Za-z0-9]")


def _log(stage: str, msg: str) -> None:
    print(f"[sentiment:{stage}] {msg}", flush=True)


# ------------------------------------------------------------------------------- download
def download(cfg: DictConfig, run=None) -> None:
    d = cfg.data
    manifest = core_download(d, TaskPaths(cfg).data / "raw", lambda dst: _download_hub(cfg, dst))
    _log("download", f"{d.file}: {manifest['bytes']} bytes, sha256 {manifest['sha256'][:12]}…")


def _download_hub(cfg: DictConfig, dst: Path) -> dict:
    d = cfg.data
    ds = load_hub_dataset(d)
    cols = [c for c in (d.text_field, d.label_field, "name") if c in ds.column_names]
    for field, col in (("data.text_field", d.text_field), ("data.label_field", d.label_field)):
        if col not in cols:
            raise PipelineError(f"{d.hub_name}: no column {col!r} ({field}); columns: {', '.join(ds.column_names)}")
    ds.select_columns(cols).to_pandas().to_csv(dst, index=False)
    return {"hub_name": d.hub_name, "hub_split": d.hub_split}


# ---------------------------------------------------------------------------------- clean
def clean(cfg: DictConfig, run=None) -> None:
    d, c, tp = cfg.data, cfg.data.clean, TaskPaths(cfg)
    out, stats_path = tp.data / "clean.jsonl", tp.data / "clean_stats.json"
    for p in (out, stats_path):
        remove(p)
    df = _read_raw(cfg, tp.data / "raw" / d.file)
    seed = int(cfg.runtime.seed)
    steps: list[dict] = []

    def step(name: str, keep: np.ndarray | None = None, **extra) -> None:
        nonlocal df
        before = len(df)
        if keep is not None:
            df = df[keep]
        steps.append({"step": name, "removed": before - len(df), "remaining": len(df), **extra})
        _log("clean", f"{name}: removed {before - len(df)}, {len(df)} remaining"
             + "".join(f", {k}={v}" for k, v in extra.items()))

    step("read")
    norm = df["text"].map(normalise)
    changed = int((norm != df["text"]).sum())
    df = df.assign(text=norm)
    step("normalise", changed=changed)
    step("min_chars", (df["text"].str.len() >= max(c.min_chars, 1)).to_numpy())
    if c.dedup:
        step("dedup", (~df["text"].str.lower().duplicated(keep="first")).to_numpy())
    lang_info: dict = {}
    if c.lang.enabled:
        keep, lang_info = _lang_filter(cfg, df)
        step("lang", keep)
    if c.balance or c.max_per_class is not None:
        step("balance", _balance(df, cfg, seed))
    if d.limit is not None:
        step("limit", _stratified_keep(df["label"].to_numpy(), int(d.limit), seed))

    labels = list(d.labels)
    rows = [{"id": r.id, "text": r.text, "label": int(r.label), "label_name": labels[r.label], "game": r.game}
            for r in df.itertuples(index=False)]
    if not rows:
        raise PipelineError(f"data.clean: no rows left after cleaning {d.file}")
    classes = {name: int((df["label"] == i).sum()) for i, name in enumerate(labels)}
    write_jsonl(out, rows)
    write_json(stats_path, {"file": d.file, "steps": steps, "classes": classes, **lang_info})
    _log("clean", f"classes: {classes}")


def normalise(text: str) -> str:
    """NFC, then collapse every whitespace run (newlines, tabs, NBSP...) to one space."""
    return _WS.sub(" ", unicodedata.normalize("NFC", text)).strip()


def _read_raw(cfg: DictConfig, path: Path):
    """Read the raw CSV strictly: bad bytes, missing columns and unmappable labels are errors."""
    import pandas as pd

    d = cfg.data
    if not path.exists():
        raise PipelineError(f"{path}: file not found (run the download stage first)")
    data = path.read_bytes()
    if not data.strip():
        raise PipelineError(f"{path}: empty file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise PipelineError(f"{path}: line {line}: not valid UTF-8 (byte {e.start})") from None
    try:
        # everything as str and no NA guessing: a review saying "NA" is text, not missing
        df = pd.read_csv(io.StringIO(text.removeprefix("\ufeff")), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise PipelineError(f"{path}: cannot parse CSV: {str(e).strip().splitlines()[0]}") from None
    for field in ("text_field", "label_field"):
        if d[field] not in df.columns:
            raise PipelineError(f"{path}: no column {d[field]!r} (data.{field}); columns: {', '.join(df.columns)}")
    if df.empty:
        raise PipelineError(f"{path}: no rows")

    labels = list(d.labels)
    mapping = {name.lower(): i for i, name in enumerate(labels)}
    mapping.update({"false": 0, "0": 0, "true": 1, "1": 1})
    key = df[d.label_field].str.strip().str.lower()
    bad = ~key.isin(list(mapping))
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        more = f" (and {int(bad.sum()) - 1} more rows)" if bad.sum() > 1 else ""
        raise PipelineError(f"{path}: row {i + 1}: {d.label_field}={df[d.label_field].iloc[i]!r} cannot be mapped "
                            f"to data.labels {labels} (accepted: True/False, 1/0 or a label name){more}")
    index = key.map(mapping).astype(int)
    # True/1 is class 1: with a single name in data.labels it would index past the list
    if (over := index >= len(labels)).any():
        i = int(np.flatnonzero(over.to_numpy())[0])
        raise PipelineError(f"{path}: row {i + 1}: {d.label_field}={df[d.label_field].iloc[i]!r} is class {index.iloc[i]}, "
                            f"but data.labels names only {len(labels)} ({labels}); list a name for every class in the file")
    # id from the 1-based data row number: stable across config changes, traceable to the CSV
    return pd.DataFrame({
        "id": [f"r{i:06d}" for i in range(1, len(df) + 1)],
        "text": df[d.text_field],
        "label": index,
        "game": df["name"] if "name" in df.columns else None,
    })


def language_identifier(candidates=None):
    """A private py3langid identifier (module-level `set_languages` would mutate global state)."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    if candidates:
        ident.set_languages(list(candidates))
    return ident


def short_ascii(text: str, max_words: int) -> bool:
    """Short, pure-ASCII text with at least one letter/digit ("gg", "10/10", not "!!!")."""
    return (max_words > 0 and len(text.split()) <= max_words
            and _ASCII.fullmatch(text) is not None and _ALNUM.search(text) is not None)


def _lang_filter(cfg: DictConfig, df) -> tuple[np.ndarray, dict]:
    lc = cfg.data.clean.lang
    keep_langs, cands = list(lc.keep), (list(lc.candidates) if lc.candidates else None)
    if cands and not set(keep_langs) <= set(cands):
        raise PipelineError(f"data.clean.lang.keep: {sorted(set(keep_langs) - set(cands))} not in "
                            "data.clean.lang.candidates (nothing could be kept)")
    try:
        ident = language_identifier(cands)
    except ValueError as e:
        raise PipelineError(f"data.clean.lang.candidates: {e}") from None
    unknown = set(keep_langs) - set(ident.labels)
    if unknown:
        raise PipelineError(f"data.clean.lang.keep: unknown language code(s) {sorted(unknown)}")
    langs = [ident.classify(t)[0] for t in df["text"]]
    by_lang = np.isin(langs, keep_langs)
    rescued = np.array([short_ascii(t, lc.short_ascii_max_words) for t in df["text"]], dtype=bool) & ~by_lang
    keep = by_lang | rescued
    # a seeded sample of what was dropped, for the report
    dropped = np.flatnonzero(~keep)
    pick = np.sort(np.random.default_rng(cfg.runtime.seed).permutation(dropped)[:20])
    drop_langs = np.array(langs, dtype=object)[~keep]
    top = sorted(((str(k), int(v)) for k, v in zip(*np.unique(drop_langs, return_counts=True))),
                 key=lambda kv: (-kv[1], kv[0]))[:15] if len(drop_langs) else []
    return keep, {
        "lang_rescued_short_ascii": int(rescued.sum()),
        "lang_dropped_by_language": dict(top),
        "lang_dropped_sample": [{"id": df["id"].iloc[i], "lang": langs[i], "text": df["text"].iloc[i][:300]}
                                for i in pick],
    }


def _balance(df, cfg: DictConfig, seed: int) -> np.ndarray:
    """Keep mask: with `balance`, every class down to the smallest (capped by max_per_class);
    without it, only cap classes at max_per_class."""
    c = cfg.data.clean
    y = df["label"].to_numpy()
    counts = np.bincount(y, minlength=len(cfg.data.labels))
    if c.balance:
        empty = [cfg.data.labels[i] for i, n in enumerate(counts) if n == 0]
        if empty:
            raise PipelineError(f"data.clean.balance: class(es) {empty} have no rows left; cannot balance")
        target = int(counts.min())
        if c.max_per_class is not None:
            target = min(target, int(c.max_per_class))
    else:
        target = int(c.max_per_class)
    rng = np.random.default_rng(seed)
    keep = np.zeros(len(y), dtype=bool)
    for cls in range(len(counts)):
        idx = np.flatnonzero(y == cls)
        keep[rng.permutation(idx)[:target]] = True
    return keep


def _stratified_keep(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Keep mask of a seeded stratified sample of n rows (largest-remainder allocation)."""
    if n < 1:
        raise PipelineError(f"data.limit: must be >= 1, got {n}")
    if n >= len(y):
        return np.ones(len(y), dtype=bool)
    classes, counts = np.unique(y, return_counts=True)
    quota = counts * n / len(y)
    take = np.floor(quota).astype(int)
    for i in np.argsort(-(quota - take), kind="stable")[: n - take.sum()]:
        take[i] += 1
    rng = np.random.default_rng(seed)
    keep = np.zeros(len(y), dtype=bool)
    for cls, k in zip(classes, take):
        keep[rng.permutation(np.flatnonzero(y == cls))[:k]] = True
    return keep


# ---------------------------------------------------------------------------------- split
def split(cfg: DictConfig, run=None) -> None:
    from sklearn.model_selection import train_test_split

    d, tp = cfg.data, TaskPaths(cfg)
    out, stats_path = tp.data / "split", tp.data / "split_stats.json"
    for p in (out, stats_path):
        remove(p)
    val, test = float(d.split.val), float(d.split.test)
    if not (0 < val < 1 and 0 < test < 1 and val + test < 1):
        raise PipelineError(f"data.split: need 0 < val, 0 < test and val + test < 1 (got val={val}, test={test})")
    rows = read_jsonl(tp.data / "clean.jsonl")
    y = [r["label"] for r in rows]
    if rows and len(set(y)) < 2:  # a classifier trained on one class learns nothing, yet would train and report
        raise PipelineError(f"{tp.data / 'clean.jsonl'}: every row has label {rows[0]['label_name']!r}; the training set "
                            f"needs rows of at least 2 of data.labels {list(d.labels)}")
    idx = np.arange(len(rows))
    seed = int(cfg.runtime.seed)
    try:
        rest, te = train_test_split(idx, test_size=test, stratify=y, random_state=seed)
        tr, va = train_test_split(rest, test_size=val / (1 - test), stratify=[y[i] for i in rest], random_state=seed)
    except ValueError as e:  # too few rows or members of a class for these ratios
        raise PipelineError(f"data.split: cannot split {len(rows)} rows with val={val}, test={test}: {e}") from None
    parts = {"train": tr, "val": va, "test": te}
    for name, ix in parts.items():
        if len(ix) == 0:
            raise PipelineError(f"data.split: split {name!r} would be empty ({len(rows)} rows)")
    labels = list(d.labels)
    stats = {}
    with atomic_path(out) as tmp:
        tmp.mkdir()
        for name, ix in parts.items():
            part = [rows[i] for i in sorted(ix)]  # original order: stable, diff-friendly files
            write_jsonl(tmp / f"{name}.jsonl", part)
            stats[name] = {"rows": len(part), "classes": {n: sum(r["label"] == i for r in part) for i, n in enumerate(labels)}}
    write_json(stats_path, stats)
    for name, s in stats.items():
        _log("split", f"{name}: {s['rows']} rows {s['classes']}")


# ------------------------------------------------------------------ readers for later stages
def _numbered_rows(path: Path) -> list[tuple[int, dict]]:
    """Rows with their 1-based line numbers (read_jsonl skips blank lines the same way)."""
    rows = read_jsonl(path)  # PipelineError for a missing file, bad UTF-8 or JSON
    with open(path, "rb") as f:
        lines = [i for i, raw in enumerate(f, 1) if raw.decode("utf-8").strip()]
    if not rows:
        raise PipelineError(f"{path}: no rows")
    return list(zip(lines, rows))


def read_split(path: Path, labels: list[str]) -> list[dict]:
    out = []
    for line, row in _numbered_rows(path):
        text, label = row.get("text"), row.get("label")
        if not isinstance(text, str):
            raise PipelineError(f"{path}:{line}: field 'text': expected a string, got {text!r}")
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(labels):
            raise PipelineError(f"{path}:{line}: field 'label': expected an index into {labels}, got {label!r}")
        out.append({"id": row.get("id", f"{path.stem}:{line}"), "text": text, "label": label})
    return out


def read_extra_sets(files: list[str], labels: list[str]) -> dict[str, list[dict]]:
    """Extra labelled sets ({review, label name}), keyed by file stem."""
    sets: dict[str, list[dict]] = {}
    for f in files:
        path = Path(f)
        name = path.stem
        if name == "test" or name in sets:
            raise PipelineError(f"evaluate.extra_sets: {f}: set name {name!r} (the file stem) is already used")
        rows = []
        for line, row in _numbered_rows(path):
            for field in ("review", "label"):
                if field not in row:
                    raise PipelineError(f"{path}:{line}: missing field {field!r}")
            if not isinstance(row["review"], str) or not row["review"].strip():
                raise PipelineError(f"{path}:{line}: field 'review': expected a non-empty string")
            if row["label"] not in labels:
                raise PipelineError(
                    f"{path}:{line}: field 'label': unknown label {row['label']!r}; expected one of {', '.join(labels)}")
            rows.append({"id": f"{name}:{line}", "text": row["review"], "label": labels.index(row["label"])})
        sets[name] = rows
    return sets
