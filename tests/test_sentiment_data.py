"""Data stages of the sentiment task (download/clean/split) on tiny hand-made CSVs and on the
real Steam reviews, with the real py3langid. Bad input goes through the real stage subprocess."""
from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from conftest import make_params, run_stage

from pipelines.core.config import load_task_block
from pipelines.core.errors import PipelineError
from pipelines.sentiment import data

NO_LANG = ["data.clean.lang.enabled=false"]


def write_csv(root: Path, rows: list[dict] | bytes, name: str = "reviews.csv", sums: str | None = "ok") -> Path:
    """Write a CSV (dict rows, or raw bytes) into root; sums: "ok" correct SHA256SUMS,
    "bad" a wrong hash, "unlisted" a file not naming it, None no SHA256SUMS."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / name
    if isinstance(rows, bytes):
        path.write_bytes(rows)
    else:
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["review", "voted_up"])
            w.writeheader()
            w.writerows(rows)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if sums is not None:
        line = {"ok": f"{digest}  {name}", "bad": f"{'0' * 64}  {name}", "unlisted": f"{digest}  other.csv"}[sums]
        (root / "SHA256SUMS").write_text(line + "\n")
    return path


def overrides_for(root: Path, extra: list[str] = ()) -> list[str]:
    return [f"data.root={root}", "data.file=reviews.csv", *extra]


def cfg_for(tmp_path: Path, overrides: list[str]):
    tmp_path.mkdir(parents=True, exist_ok=True)
    return load_task_block("sentiment", make_params(tmp_path, overrides=overrides))


def run_clean(tmp_path: Path, rows, extra: list[str] = NO_LANG) -> tuple[list[dict], dict]:
    """download + clean in-process; returns (clean rows, clean_stats)."""
    cfg = cfg_for(tmp_path, overrides_for(tmp_path / "src", extra))
    write_csv(tmp_path / "src", rows)
    data.download(cfg)
    data.clean(cfg)
    out = tmp_path / "data" / "sentiment"
    rows = [json.loads(line) for line in (out / "clean.jsonl").read_text().splitlines()]
    return rows, json.loads((out / "clean_stats.json").read_text())


def reviews(*texts: str, label: str = "True") -> list[dict]:
    return [{"review": t, "voted_up": label} for t in texts]


# ------------------------------------------------------------------------- cleaning edge cases
def test_whitespace_nfc_and_short_reviews(tmp_path):
    rows, stats = run_clean(tmp_path, reviews(
        "  Great\n\tgame \r\n  really  ", "", "x", "   ", "ok", "cafe\u0301 vibes", "\u00a0nice\u00a0one\u2028"),
        NO_LANG + ["data.clean.balance=false"])
    assert [r["text"] for r in rows] == ["Great game really", "ok", "café vibes", "nice one"]
    assert [r["id"] for r in rows] == ["r000001", "r000005", "r000006", "r000007"]
    steps = {s["step"]: s for s in stats["steps"]}
    assert steps["min_chars"]["removed"] == 3 and steps["normalise"]["removed"] == 0
    assert rows[0]["game"] is None  # no `name` column in this file


def test_case_insensitive_duplicates(tmp_path):
    texts = ("Good Game", "good game", "GOOD   GAME\n", "other")
    rows, stats = run_clean(tmp_path / "a", reviews(*texts), NO_LANG + ["data.clean.balance=false"])
    assert [(r["id"], r["text"]) for r in rows] == [("r000001", "Good Game"), ("r000004", "other")]
    assert {s["step"]: s["removed"] for s in stats["steps"]}["dedup"] == 2
    rows, _ = run_clean(tmp_path / "b", reviews(*texts), NO_LANG + ["data.clean.balance=false", "data.clean.dedup=false"])
    assert len(rows) == 4


def test_label_mapping(tmp_path):
    labels = ["True", "False", "true", "FALSE", "1", "0", " 1 ", "positive", "NEGATIVE", "Positive"]
    rows, _ = run_clean(tmp_path, [{"review": f"review {i}", "voted_up": v, "name": "Dota 2"} for i, v in enumerate(labels)],
                        NO_LANG + ["data.clean.balance=false"])
    assert [r["label"] for r in rows] == [1, 0, 1, 0, 1, 0, 1, 1, 0, 1]
    assert [r["label_name"] for r in rows[:2]] == ["positive", "negative"]
    assert rows[0]["game"] == "Dota 2"


def _pos_neg(n_pos: int, n_neg: int) -> list[dict]:
    return reviews(*(f"positive review {i}" for i in range(n_pos))) + reviews(
        *(f"negative review {i}" for i in range(n_neg)), label="False")


def _counts(rows):
    return sum(r["label"] == 0 for r in rows), sum(r["label"] == 1 for r in rows)


@pytest.mark.parametrize("extra, expected", [
    ([], (10, 10)),                                                  # down to the smallest class
    (["data.clean.max_per_class=4"], (4, 4)),                        # capped below it
    (["data.limit=8"], (4, 4)),                                      # limit after balancing
    (["data.clean.balance=false", "data.clean.max_per_class=12"], (10, 12)),  # cap only
    (["data.clean.balance=false", "data.limit=8"], (2, 6)),          # stratified limit
])
def test_balance_and_limit(tmp_path, extra, expected):
    rows, stats = run_clean(tmp_path, _pos_neg(30, 10), NO_LANG + extra)
    assert _counts(rows) == expected
    assert stats["classes"] == {"negative": expected[0], "positive": expected[1]}
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)  # original order kept


def test_language_filter(tmp_path):
    texts = {
        "This game is really fun to play with friends": True,
        "Игра просто супер, всем советую": False,
        "game nya bagus banget sama teman": False,  # Indonesian, too long for the short rule
        "Juego muy divertido, lo recomiendo a todos": False,
        "good": True,  # en among the candidates (Somali among all languages)
        "Fun game!": True, "10/10": True,  # langid says id/ar: kept as short ASCII
        "!!!": False, "😀😀": False,  # nothing to identify, not rescued
    }
    rows, stats = run_clean(tmp_path / "a", reviews(*texts), ["data.clean.balance=false"])
    assert [r["text"] for r in rows] == [t for t, keep in texts.items() if keep]
    assert stats["lang_rescued_short_ascii"] == 2
    assert {d["text"] for d in stats["lang_dropped_sample"]} == {t for t, keep in texts.items() if not keep}
    # without the short rule the langid verdict alone decides: with all languages "good" is Somali
    rows, _ = run_clean(tmp_path / "b", reviews(*texts), [
        "data.clean.balance=false", "data.clean.lang.short_ascii_max_words=0", "data.clean.lang.candidates=null"])
    assert [r["text"] for r in rows] == ["This game is really fun to play with friends"]
    ident = data.language_identifier(["en", "id", "ru"])  # private instance: global identifier untouched
    assert ident.classify("Good Game")[0] == "en" and data.language_identifier().classify("Good Game")[0] != "en"


# ------------------------------------------------------------------------------- real data
@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """The default pipeline on the real Steam reviews, run as DVC would (subprocesses)."""
    root = tmp_path_factory.mktemp("real")
    params = make_params(root)
    for stage in ("download", "clean", "split"):
        run_stage(stage, params, check=True)
    return root


def test_real_counts(real):
    out = real / "data" / "sentiment"
    manifest = json.loads((out / "raw" / "manifest.json").read_text())
    assert manifest["checksum_verified"] and manifest["bytes"] == (out / "raw" / "steam_reviews.csv").stat().st_size
    stats = json.loads((out / "clean_stats.json").read_text())
    steps = {s["step"]: s for s in stats["steps"]}
    assert steps["read"]["remaining"] == 8435
    assert [s["step"] for s in stats["steps"]] == ["read", "normalise", "min_chars", "dedup", "lang", "balance"]
    neg, pos = stats["classes"]["negative"], stats["classes"]["positive"]
    assert neg == pos and 2400 <= neg + pos <= 3200, stats["classes"]  # design notes: ~2.5k
    assert 0 < len(stats["lang_dropped_sample"]) <= 20


def test_split_stratified_disjoint(real):
    out = real / "data" / "sentiment"
    clean_ids = {json.loads(line)["id"] for line in (out / "clean.jsonl").read_text().splitlines()}
    parts = {n: [json.loads(line) for line in (out / "split" / f"{n}.jsonl").read_text().splitlines()]
             for n in ("train", "val", "test")}
    ids = {n: {r["id"] for r in rows} for n, rows in parts.items()}
    assert ids["train"].isdisjoint(ids["val"]) and ids["train"].isdisjoint(ids["test"]) and ids["val"].isdisjoint(ids["test"])
    assert ids["train"] | ids["val"] | ids["test"] == clean_ids
    total = len(clean_ids)
    for name, ratio in (("val", 0.1), ("test", 0.2)):
        assert abs(len(parts[name]) - ratio * total) <= 2
    for rows in parts.values():  # stratified: balanced input stays balanced in every split
        neg, pos = _counts(rows)
        assert neg > 0 and pos > 0 and abs(neg - pos) <= 1
    stats = json.loads((out / "split_stats.json").read_text())
    assert {n: s["rows"] for n, s in stats.items()} == {n: len(r) for n, r in parts.items()}


def test_same_seed_same_bytes(real, tmp_path):
    """Re-running clean + split with the same seed reproduces every output byte for byte."""
    cfg = cfg_for(tmp_path, [])
    shutil.copytree(real / "data" / "sentiment" / "raw", tmp_path / "data" / "sentiment" / "raw")
    data.clean(cfg)
    data.split(cfg)
    for rel in ("clean.jsonl", "clean_stats.json", "split_stats.json", "split/train.jsonl", "split/val.jsonl", "split/test.jsonl"):
        a, b = real / "data" / "sentiment" / rel, tmp_path / "data" / "sentiment" / rel
        assert a.read_bytes() == b.read_bytes(), rel


@pytest.mark.parametrize("val, test", [(0.0, 0.2), (0.5, 0.5), (0.1, 1.2)])
def test_split_bad_ratios(tmp_path, val, test):
    run_clean(tmp_path, _pos_neg(10, 10))
    # a share outside [0, 1) is rejected by the schema when the params are loaded, the others by split
    with pytest.raises(PipelineError, match=r"^data\.split: |sentiment\.data\.split\.test: must be >= 0 and < 1, got 1\.2$"):
        data.split(cfg_for(tmp_path, overrides_for(tmp_path / "src", NO_LANG + [f"data.split.val={val}", f"data.split.test={test}"])))
    assert not (tmp_path / "data" / "sentiment" / "split").exists()


def test_split_too_small(tmp_path):
    run_clean(tmp_path, _pos_neg(2, 2))  # 4 rows cannot give 3 stratified non-empty splits
    with pytest.raises(PipelineError, match=r"^data\.split: "):
        data.split(cfg_for(tmp_path, overrides_for(tmp_path / "src", NO_LANG)))


# ------------------------------------------------------------------- bad input (real stages)
def assert_one_error(proc, *needles: str) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def clean_stage_on(tmp_path: Path, content, extra: list[str] = ()):
    """Stage the bad file via an in-process download, then run the real clean stage."""
    src = tmp_path / "src"
    write_csv(src, content)
    params = make_params(tmp_path, overrides=overrides_for(src, list(extra)))
    data.download(load_task_block("sentiment", params))
    out = tmp_path / "data" / "sentiment"
    (out / "clean.jsonl").write_text("stale\n")  # a failed run must not leave old outputs behind
    proc = run_stage("clean", params)
    assert not (out / "clean.jsonl").exists() and not (out / "clean_stats.json").exists()
    return proc


# an empty file, a missing label column and invalid UTF-8 are cases of test_bad_inputs.py
@pytest.mark.parametrize("content, needles", [
    (b"review,voted_up\n", ["reviews.csv", "no rows"]),
    ([{"text": "fun", "voted_up": "True"}], ["reviews.csv", "'review'", "data.text_field"]),
    ([{"review": "fun", "voted_up": "True"}, {"review": "meh", "voted_up": "maybe"}], ["reviews.csv", "row 2", "voted_up", "'maybe'"]),
])
def test_clean_bad_input(tmp_path, content, needles):
    assert_one_error(clean_stage_on(tmp_path, content), *needles)


def test_download_file_not_in_checksums(tmp_path):
    """(A checksum mismatch is a case of test_bad_inputs.py.)"""
    src = tmp_path / "src"
    write_csv(src, reviews("fun"), sums="unlisted")
    assert_one_error(run_stage("download", make_params(tmp_path, overrides=overrides_for(src))),
                     "reviews.csv", "not listed", "SHA256SUMS")
    assert not (tmp_path / "data" / "sentiment" / "raw").exists()


def test_download_missing_file_and_no_sums(tmp_path, capsys):
    src = tmp_path / "src"
    write_csv(src, reviews("fun"), sums=None)
    proc = run_stage("download", make_params(tmp_path, overrides=[f"data.root={src}", "data.file=nope.csv"]))
    assert_one_error(proc, "nope.csv", "file not found")
    assert not (tmp_path / "data" / "sentiment" / "raw").exists()
    cfg = cfg_for(tmp_path, overrides_for(src))  # no SHA256SUMS: warn and go on
    data.download(cfg)
    assert "warning:" in capsys.readouterr().err
    manifest = json.loads((tmp_path / "data" / "sentiment" / "raw" / "manifest.json").read_text())
    assert manifest["checksum_verified"] is False and manifest["source"] == "local"
    cfg.data.source = "ftp"
    with pytest.raises(PipelineError, match="data.source"):
        data.download(cfg)
