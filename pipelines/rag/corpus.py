"""Corpus loading and cleaning: a text/Markdown file or folder -> documents of paragraphs with headings.

The man page is rendered text: tabs and runs of spaces as layout, a page header/footer
("BASH(1)  General Commands Manual  BASH(1)"), headings as unindented upper-case lines and
sub-headings indented by three spaces. Cleaning keeps the words and the structure (section
heading per paragraph, as metadata) and drops the layout.

`normalize` is the one inline normalisation applied to chunk text *and* to evidence strings,
so "a chunk contains the evidence" means the same thing on both sides.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

from pipelines.core.errors import PipelineError
from pipelines.core.squad import clean_title, read_squad

TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".text")
_WS = re.compile(r"\s+")
_DOTS = re.compile(r"\.{4,}")  # leader dots / "....."; "..." is kept: man syntax uses it ([arg ...])
# man page header/footer: "NAME(1)   <centre text>   NAME(1)" or "<source>  <date>  NAME(1)"
_MAN_FURNITURE = re.compile(r"^\S.*\s{2,}[A-Z][A-Z0-9_.-]*\(\d[a-z]*\)\s*$")
# a word broken at the end of a line: "compro-\n   bar" (both sides letters, next one lower-case)
_HYPHEN = re.compile(r"([^\W\d_])-\n[ \t]*([a-záéíóúüñ])")


def normalize(text: str, collapse_dots: bool = True) -> str:
    """Inline normalisation shared by chunks and evidence: one space for any whitespace run."""
    if collapse_dots:
        text = _DOTS.sub(".", text)
    return _WS.sub(" ", text).strip()


def read_text(path: Path) -> str:
    data = path.read_bytes()
    # NUL is valid UTF-8 but never text: a binary file, or UTF-16 (would be indexed as garbage)
    if (nul := data.find(b"\x00")) >= 0:
        raise PipelineError(f"{path}: contains NUL bytes (byte {nul}): not a text file; if it is "
                            f"UTF-16 text, convert it with `iconv -f utf-16 -t utf-8`")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PipelineError(f"{path}: not valid UTF-8 (byte {e.start}); convert it with "
                            f"`iconv -f latin1 -t utf-8`") from None


def corpus_files(path: Path) -> list[Path]:
    """The corpus' files: the file itself, or every text/Markdown file under a folder (sorted)."""
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
        if not files:
            raise PipelineError(f"{path}: corpus folder has no text files ({', '.join(TEXT_SUFFIXES)})")
        return files
    raise PipelineError(f"{path}: corpus not found")


def _is_heading(line: str, markdown: bool) -> tuple[int, str] | None:
    """(level, title) when the line is a heading: man page capitals / 3-space sub-heading, or Markdown #."""
    if markdown:
        m = re.match(r"^(#{1,6})\s+(.+?)\s*#*\s*$", line)
        return (len(m.group(1)), m.group(2)) if m else None
    s = line.strip()
    if not s or len(s) > 70:
        return None
    if not line[0].isspace() and s.upper() == s and re.search(r"[A-ZÁÉÍÓÚÑ]{3}", s):
        return 1, s
    # sub-heading: exactly three spaces of indent, capitalised words, no sentence punctuation
    if re.match(r"^ {3}\S", line) and s[0].isupper() and not re.search(r"[.:;,]$", s) and len(s.split()) <= 10:
        return 2, s
    return None


def clean_document(raw: str, name: str, cfg: Any) -> dict:
    """One document: {doc, text, paragraphs: [{start, end, section}]} with `text` paragraphs joined by blank lines.

    cfg: the `clean` block (drop_furniture, dehyphenate, collapse_dots, furniture_patterns).
    """
    markdown = name.lower().endswith((".md", ".markdown"))
    text = raw.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n")
    if cfg.dehyphenate:
        text = _HYPHEN.sub(r"\1\2", text)
    extra = [re.compile(p) for p in cfg.furniture_patterns]
    paragraphs: list[tuple[str, str]] = []  # (section, text)
    section, sub = "", ""
    buf: list[str] = []
    stats = {"furniture_lines": 0, "headings": 0}

    def flush() -> None:
        if buf:
            para = normalize(" ".join(buf), cfg.collapse_dots)
            if para:
                paragraphs.append((" > ".join(x for x in (section, sub) if x), para))
            buf.clear()

    for line in text.split("\n"):
        if cfg.drop_furniture and (_MAN_FURNITURE.match(line) or any(p.search(line) for p in extra)):
            stats["furniture_lines"] += 1
            continue
        if not line.strip():
            flush()
            continue
        head = _is_heading(line, markdown)
        if head:
            flush()
            stats["headings"] += 1
            level, title = head
            if level == 1:
                section, sub = normalize(title), ""
            else:
                sub = normalize(title)
            continue
        buf.append(line)
    flush()
    out_text, spans, pos = [], [], 0
    for sec, para in paragraphs:
        spans.append({"start": pos, "end": pos + len(para), "section": sec})
        out_text.append(para)
        pos += len(para) + 2
    return {"doc": name, "text": "\n\n".join(out_text), "paragraphs": spans, "stats": stats}


def clean_corpus(path: Path, cfg: Any) -> list[dict]:
    root = path if path.is_dir() else path.parent
    docs = []
    for f in corpus_files(path):
        doc = clean_document(read_text(f), str(f.relative_to(root)), cfg)
        if doc["text"].strip():
            docs.append(doc)
    if not docs:
        raise PipelineError(f"{path}: corpus is empty (no text left after cleaning)")
    return docs


def squad_documents(path: Path) -> tuple[list[dict], list[dict]]:
    """A SQuAD JSON file (core.squad's reader) -> (one document per paragraph, its questions, whose
    relevant document is their paragraph; `is_impossible` ones are unanswerable, with none)."""
    docs, questions = [], []
    for _, p, art, par in read_squad(path).paragraphs():
        # "Nikola _ Tesla" -> "Nikola Tesla" (as extractive_qa names articles): it prefixes the chunks
        # ("<title>: <paragraph>") and is the section a prompt shows
        title = clean_title(art["title"], drop_language_note=False)
        name = f"{title}#{p}"
        text = normalize(par["context"])
        docs.append({"doc": name, "text": text, "paragraphs": [{"start": 0, "end": len(text), "section": title}],
                     "stats": {}})
        for q in par["qas"]:
            answers = [x["text"] for x in q["answers"] if x["text"]]
            answerable = not q["is_impossible"]
            questions.append({"id": q["id"], "question": q["question"], "title": title,
                              "relevant_docs": [name] if answerable else [],
                              "evidence": [], "answer": answers[0] if answers and answerable else "",
                              "answerable": answerable})
    return docs, questions


QUESTION_FIELDS = ("id", "question")


def check_evidence(questions: Sequence[dict], docs: Sequence[dict], where: str, corpus: str,
                   collapse_dots: bool = True) -> int:
    """Answerable questions whose evidence strings occur nowhere in the cleaned corpus. None found
    for a whole set = the wrong corpus or file: an error (retrieval would score 0 and look like a
    model problem). Some missing is a loud counted warning: cleaning (dehyphenation, dropped page
    furniture) can legitimately change a quoted string; those questions are unreachable."""
    texts = [normalize(d["text"], collapse_dots) for d in docs]
    answerable = [q for q in questions if q.get("answerable") and q.get("evidence")]
    missing = [q["id"] for q in answerable
               if not any(normalize(e, collapse_dots) in t for e in q["evidence"] for t in texts)]
    if answerable and len(missing) == len(answerable):
        raise PipelineError(f"{where}: no evidence string of its {len(answerable)} answerable questions occurs in "
                            f"corpus {corpus!r} (wrong corpus or question file?)")
    if missing:
        print(f"warning: {where}: {len(missing)} of {len(answerable)} answerable questions have no evidence string "
              f"in corpus {corpus!r} (unreachable for every retriever): {', '.join(map(str, missing[:5]))}"
              f"{' ...' if len(missing) > 5 else ''}", file=sys.stderr)
    return len(missing)


def validate_questions(rows: Iterable[dict], source: str) -> list[dict]:
    """Labelled questions: id, question, evidence (list of strings; empty = the answer is absent), answer."""
    out, seen = [], set()
    for i, r in enumerate(rows, 1):
        for f in QUESTION_FIELDS:
            if not isinstance(r.get(f), str) or not r[f].strip():
                raise PipelineError(f"{source}: row {i}: field {f!r} missing or not a non-empty string")
        ev = r.get("evidence", [])
        if isinstance(ev, str):
            ev = [ev]
        if not isinstance(ev, list) or not all(isinstance(e, str) and e.strip() for e in ev):
            raise PipelineError(f"{source}: row {i}: field 'evidence' must be a list of non-empty strings")
        if r["id"] in seen:
            raise PipelineError(f"{source}: row {i}: duplicate id {r['id']!r}")
        seen.add(r["id"])
        answerable = bool(r.get("answerable", bool(ev)))
        if answerable and not ev:
            raise PipelineError(f"{source}: row {i}: answerable question without 'evidence'")
        out.append({"id": r["id"], "question": r["question"].strip(), "evidence": ev,
                    "answer": str(r.get("answer", "")), "answerable": answerable,
                    "lang": r.get("lang", ""), "topic": r.get("topic", "")})
    if not out:
        raise PipelineError(f"{source}: no questions")
    return out
