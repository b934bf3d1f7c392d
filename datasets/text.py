"""Language-model corpora: Tiny Shakespeare (char or word level), WikiText-2, Penn Treebank.

Every loader returns ``Data(task='lm')`` whose ``x_*`` are int64 windows ``[N, seq_len]`` of
token ids and ``y_*`` the next-token targets (the same stream shifted by one token, so
``y[:, :-1] == x[:, 1:]``). ``num_classes`` is the vocabulary size.

Files (under ``paths.data_dir``), in their original formats:

- ``tinyshakespeare/input.txt``: the char-rnn / nanoGPT corpus; the first 90% of the
  characters are the training split and the last 10% the validation split (as nanoGPT).
- ``wikitext-2/wiki.{train,valid,test}.tokens``: the tokenized WikiText-2 release
  (``wikitext-2-v1.zip``); words split on spaces, ``<eos>`` appended to every line (blank
  lines included), as the PyTorch word-language-model example does.
- ``ptb/ptb.{train,valid,test}.txt``: Mikolov's PTB (``simple-examples``); words split on
  spaces, ``<eos>`` appended to every line.

Vocabulary: word level is built from the *training split* only, ids ordered by decreasing
count (ties: first occurrence), so id 0 is the most frequent token; ``max_vocab`` keeps the
most frequent ``max_vocab - 1`` words (plus ``<unk>``) and ``min_count`` drops rare words;
tokens of the evaluation split that are not in the vocabulary map to ``<unk>``. ``<unk>`` is
only added when needed (WikiText-2 and PTB already contain it). Character level uses the
sorted set of characters of the whole file (as nanoGPT), so there is no ``<unk>``.

Windows: ``x = s[i : i+T]``, ``y = s[i+1 : i+T+1]`` for ``i = 0, stride, 2*stride, ...``
(``stride`` defaults to ``seq_len``: non-overlapping windows that cover the stream once).
Evaluation windows are always non-overlapping. ``subset`` keeps at most that many training
windows: ``subset_mode: first`` takes the first K windows (a contiguous prefix of the corpus,
identical for every seed, like Kunstner et al.'s TinyPTB), ``random`` draws K windows with the
data generator ``gen`` (kept in corpus order). ``test_subset`` keeps the first K evaluation
windows.

``info``: ``vocab_size``, ``class_counts`` (count of every token id among the training
*targets* ``y_train``, a list of length ``vocab_size``), ``n_tokens`` (number of training
targets = ``y_train.numel()``), ``n_tokens_corpus`` (tokens in the training split),
``level``, ``seq_len``.

Downloads (``download: true``) use urllib with the official addresses below; offline, a
missing file raises ``DataMissingError`` with one line naming the file, the URL and the
folder to put it in. ``load_corpus(cfg, data_dir)`` returns the vocabulary and the encoded
streams, for sampling/decoding outside the trainer.
"""
from __future__ import annotations

import os
import re
import shutil
import tarfile
import urllib.request
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch

from datasets.base import Data, DataError, DataMissingError

UNK = "<unk>"
EOS = "<eos>"

TINYSHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
# The address used by salesforce/awd-lstm-lm getdata.sh and the PyTorch examples; mirror second.
WIKITEXT2_URLS = (
    "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-2-v1.zip",
    "https://wikitext.smerity.com/wikitext-2-v1.zip",
)
# Per-file raw copies of Mikolov's PTB (tomsercu/lstm), then Mikolov's simple-examples tgz.
PTB_FILE_URL = "https://raw.githubusercontent.com/tomsercu/lstm/master/data/{file}"
PTB_TGZ_URL = "http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz"

DOWNLOAD_TIMEOUT_S = 60

DEFAULTS = {
    "seq_len": 64,
    "stride": None,
    "subset": None,
    "subset_mode": "first",
    "test_subset": None,
    "max_vocab": None,
    "min_count": 1,
    "download": True,
}


# ----------------------------------------------------------------------------- tokenisation
# Word-level tokenizer for raw text (Tiny Shakespeare): words with inner apostrophes
# ("o'er", "ne'er"), numbers, every other non-space character alone, and the newline.
_WORD_RE = re.compile(r"\n|[A-Za-z]+(?:'[A-Za-z]+)*|[0-9]+|[^\sA-Za-z0-9]")


def tokenize(text: str, level: str = "char", lower: bool = False) -> list[str]:
    """Split raw text into tokens. ``char``: every character; ``word``: see ``_WORD_RE``
    (spaces and tabs are dropped, ``\\n`` is a token); ``space``: the pre-tokenized formats
    of WikiText-2/PTB (split on whitespace, ``<eos>`` at the end of every line)."""
    if lower:
        text = text.lower()
    if level == "char":
        return list(text)
    if level == "word":
        return _WORD_RE.findall(text)
    if level == "space":
        # Split on "\n" only (as iterating over a text file does), not str.splitlines(),
        # which also breaks at unicode separators that occur inside WikiText lines.
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        out: list[str] = []
        for line in lines:
            out.extend(line.split())
            out.append(EOS)
        return out
    raise ValueError(f"dataset.level must be one of char, word; got '{level}'")


def detokenize(tokens: Sequence[str], level: str = "char") -> str:
    """Inverse of ``tokenize`` up to whitespace: ``tokenize(detokenize(t), level) == t`` for
    tokens that ``tokenize`` produced (``<unk>`` excepted at word level)."""
    if level == "char":
        return "".join(tokens)
    if level == "space":
        out, line = [], []
        for tok in tokens:
            if tok == EOS:
                out.append(" ".join(line) + "\n")
                line = []
            else:
                line.append(tok)
        if line:
            out.append(" ".join(line))
        return "".join(out)
    if level == "word":
        parts: list[str] = []
        prev = "\n"
        for tok in tokens:
            parts.append(tok if (tok == "\n" or prev == "\n") else " " + tok)
            prev = tok
        return "".join(parts)
    raise ValueError(f"unknown level '{level}'")


@dataclass
class Vocab:
    """Token <-> id table; ``itos[i]`` is the token of id ``i``."""

    itos: list[str]

    def __post_init__(self):
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        self.unk_index: Optional[int] = self.stoi.get(UNK)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: Sequence[str]) -> torch.Tensor:
        stoi, unk = self.stoi, self.unk_index
        if unk is None:
            try:
                ids = [stoi[t] for t in tokens]
            except KeyError as e:
                raise KeyError(f"token {e.args[0]!r} is not in the vocabulary and there is no {UNK}") from None
        else:
            ids = [stoi.get(t, unk) for t in tokens]
        return torch.tensor(ids, dtype=torch.int64)

    def decode(self, ids) -> list[str]:
        if isinstance(ids, torch.Tensor):
            ids = ids.reshape(-1).tolist()
        return [self.itos[i] for i in ids]


def build_vocab(tokens: Sequence[str], max_vocab: Optional[int] = None, min_count: int = 1,
                always_unk: bool = False) -> Vocab:
    """Vocabulary of ``tokens`` ordered by decreasing count (ties: first occurrence).
    ``<unk>`` is added (last, unless it occurs in ``tokens``) when some token is dropped
    by ``max_vocab``/``min_count`` or when ``always_unk``; ``max_vocab`` includes it."""
    counts = Counter(tokens)  # insertion order = first occurrence; most_common is stable
    ranked = [t for t, c in counts.most_common() if c >= min_count]
    dropped = len(ranked) < len(counts)
    if max_vocab is not None:
        if max_vocab < 2:
            raise ValueError(f"dataset.max_vocab must be >= 2; got {max_vocab}")
        if len(ranked) > max_vocab:
            dropped = True
            keep_unk = UNK in ranked[:max_vocab]
            ranked = ranked[:max_vocab] if keep_unk else ranked[: max_vocab - 1]
    if (dropped or always_unk) and UNK not in ranked:
        ranked.append(UNK)
    return Vocab(ranked)


# ----------------------------------------------------------------------------- windows
def make_windows(ids: torch.Tensor, seq_len: int, stride: Optional[int] = None):
    """Cut a 1-D token stream into ``x = s[i:i+T]``, ``y = s[i+1:i+T+1]`` for
    ``i = 0, stride, ...`` (``stride`` defaults to ``seq_len``). Returns ``(x, y)`` of shape
    ``[N, seq_len]`` (N may be 0)."""
    if seq_len < 1:
        raise ValueError(f"dataset.seq_len must be >= 1; got {seq_len}")
    stride = seq_len if stride is None else int(stride)
    if stride < 1:
        raise ValueError(f"dataset.stride must be >= 1; got {stride}")
    ids = ids.reshape(-1)
    if ids.numel() < seq_len + 1:
        empty = torch.empty(0, seq_len, dtype=torch.int64)
        return empty, empty.clone()
    w = ids.unfold(0, seq_len + 1, stride)
    return w[:, :-1].contiguous(), w[:, 1:].contiguous()


def _subset(x, y, k, mode, gen):
    if k is None or k >= x.shape[0]:
        return x, y
    if k < 1:
        raise ValueError(f"dataset.subset must be >= 1 or null; got {k}")
    if mode == "first":
        idx = torch.arange(k)
    elif mode == "random":
        idx = torch.randperm(x.shape[0], generator=gen)[:k].sort().values
    else:
        raise ValueError(f"dataset.subset_mode must be one of first, random; got '{mode}'")
    return x[idx], y[idx]


# ----------------------------------------------------------------------------- downloads
def _one_line(s) -> str:
    return " ".join(str(s).split())


def _fetch(url: str, dest: Path) -> None:
    """Download ``url`` to ``dest`` atomically (temporary file, then ``os.replace``)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as r, open(tmp, "wb") as f:
            shutil.copyfileobj(r, f)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


def _extract_members(archive: Path, folder: Path, names: Sequence[str]) -> None:
    """Write the archive members whose base names are ``names`` into ``folder`` (each via a
    temporary file and ``os.replace``, so an interrupted extraction leaves no partial file)."""
    wanted = set(names)

    def write(src, base):
        tmp = folder / (base + ".part")
        with src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.replace(tmp, folder / base)

    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                base = os.path.basename(info.filename)
                if base in wanted:
                    write(z.open(info), base)
    else:
        with tarfile.open(archive) as t:
            for m in t.getmembers():
                base = os.path.basename(m.name)
                if m.isfile() and base in wanted:
                    write(t.extractfile(m), base)


def _ensure_files(dataset: str, folder: Path, names: Sequence[str], sources: Sequence[tuple],
                  download: bool) -> None:
    """Make sure ``folder/<name>`` exists for every name. ``sources`` are tried in order:
    ``('file', url_template)`` (one URL per file, ``{file}`` substituted) or
    ``('archive', url)`` (zip/tar holding the files under any sub-folder)."""
    missing = [n for n in names if not (folder / n).is_file()]
    if not missing:
        return
    first_url = sources[0][1].format(file=missing[0])
    reason = "download disabled (dataset.download=false)"
    if download:
        for kind, url in sources:
            try:
                if kind == "file":
                    for n in [n for n in names if not (folder / n).is_file()]:
                        _fetch(url.format(file=n), folder / n)
                else:
                    archive = folder / ("download." + url.rsplit("/", 1)[-1])
                    try:
                        _fetch(url, archive)
                        _extract_members(archive, folder, names)
                    finally:
                        if archive.exists():
                            archive.unlink()
            except Exception as e:  # offline, HTTP error, corrupt archive: try the next source
                reason = f"download failed: {type(e).__name__}: {e}"
                continue
            if all((folder / n).is_file() for n in names):
                return
            reason = f"{url} did not contain {', '.join(n for n in names if not (folder / n).is_file())}"
    missing = [n for n in names if not (folder / n).is_file()]
    msg = (f"{dataset}: missing file {folder / missing[0]} ({reason}); get it from {first_url} "
           f"and put {', '.join(names)} in {folder}")
    raise DataMissingError(_one_line(msg))


# ----------------------------------------------------------------------------- corpora
def _read(path: Path) -> str:
    fix = "delete it and download it again (dataset.download=true) or copy the original file"
    try:
        with open(path, "r", encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason}); {fix}") from None
    if not text.strip():
        raise DataError(f"{path}: the file is empty; {fix}")
    return text


def load_corpus(cfg: dict, data_dir) -> tuple[Vocab, torch.Tensor, torch.Tensor, str]:
    """Read, tokenize and encode the corpus named by ``cfg['name']``.
    Returns ``(vocab, train_ids, test_ids, level)`` where ``level`` is what ``detokenize``
    needs (``char``, ``word`` or ``space``)."""
    name = cfg["name"]
    c = {**DEFAULTS, **cfg}
    data_dir = Path(data_dir)
    if name == "tinyshakespeare":
        level = c.get("level", "char")
        if level not in ("char", "word"):
            raise ValueError(f"dataset.level must be one of char, word; got '{level}'")
        folder = data_dir / "tinyshakespeare"
        _ensure_files(name, folder, ["input.txt"], [("file", TINYSHAKESPEARE_URL)], c["download"])
        text = _read(folder / "input.txt")
        lower = c.get("lower")
        lower = (level == "word") if lower is None else bool(lower)
        if lower:
            text = text.lower()
        frac = float(c.get("valid_frac", 0.1))
        if not 0.0 <= frac < 1.0:
            raise ValueError(f"dataset.valid_frac must be in [0, 1); got {frac}")
        cut = int(len(text) * (1.0 - frac))
        train_text, test_text = text[:cut], text[cut:]
        if level == "char":
            if c["max_vocab"] is not None or c["min_count"] != 1:
                raise ValueError("dataset.max_vocab/min_count apply to level=word only")
            vocab = Vocab(sorted(set(text)))
            return vocab, vocab.encode(list(train_text)), vocab.encode(list(test_text)), "char"
        # Cut at the character boundary as nanoGPT; the word straddling the cut is split.
        train_tok, test_tok = tokenize(train_text, "word"), tokenize(test_text, "word")
        vocab = build_vocab(train_tok, c["max_vocab"], c["min_count"], always_unk=True)
        return vocab, vocab.encode(train_tok), vocab.encode(test_tok), "word"

    if name == "wikitext2":
        folder = data_dir / "wikitext-2"
        files = {s: f"wiki.{s}.tokens" for s in ("train", "valid", "test")}
        sources = [("archive", u) for u in WIKITEXT2_URLS]
    elif name == "ptb":
        folder = data_dir / "ptb"
        files = {s: f"ptb.{s}.txt" for s in ("train", "valid", "test")}
        sources = [("file", PTB_FILE_URL), ("archive", PTB_TGZ_URL)]
    else:
        raise KeyError(f"datasets.text has no corpus '{name}'")
    train_split, test_split = c.get("train_split", "train"), c.get("test_split", "valid")
    for key, val in (("train_split", train_split), ("test_split", test_split)):
        if val not in files:
            raise ValueError(f"dataset.{key} must be one of train, valid, test; got '{val}'")
    _ensure_files(name, folder, list(files.values()), sources, c["download"])
    # The vocabulary always comes from the official training split (TinyPTB trains on
    # 'valid' with the vocabulary of 'train').
    vocab_tok = tokenize(_read(folder / files["train"]), "space")
    vocab = build_vocab(vocab_tok, c["max_vocab"], c["min_count"])
    enc = {"train": vocab_tok}

    def ids(split):
        if split not in enc:
            enc[split] = tokenize(_read(folder / files[split]), "space")
        return vocab.encode(enc[split])

    return vocab, ids(train_split), ids(test_split), "space"


def _load(cfg: dict, data_dir, gen: torch.Generator) -> Data:
    c = {**DEFAULTS, **cfg}
    vocab, train_ids, test_ids, level = load_corpus(cfg, data_dir)
    seq_len = int(c["seq_len"])
    x_tr, y_tr = make_windows(train_ids, seq_len, c["stride"])
    if x_tr.shape[0] == 0:
        raise ValueError(f"{cfg['name']}: the training split has {train_ids.numel()} tokens, "
                         f"fewer than seq_len+1 = {seq_len + 1}")
    x_tr, y_tr = _subset(x_tr, y_tr, c["subset"], c["subset_mode"], gen)
    x_te, y_te = make_windows(test_ids, seq_len)
    if c["test_subset"] is not None:
        x_te, y_te = x_te[: int(c["test_subset"])], y_te[: int(c["test_subset"])]
    if x_te.shape[0] == 0:
        x_te = y_te = None
    V = len(vocab)
    counts = torch.bincount(y_tr.reshape(-1), minlength=V)
    info = {
        "vocab_size": V,
        "class_counts": [int(v) for v in counts.tolist()],
        "n_tokens": int(y_tr.numel()),
        "n_tokens_corpus": int(train_ids.numel()),
        "level": "char" if level == "char" else "word",
        "seq_len": seq_len,
    }
    if vocab.unk_index is not None:
        info["unk_index"] = vocab.unk_index
    return Data(x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te, task="lm",
                num_classes=V, input_dim=None, input_shape=(seq_len,), info=info)


def load_tinyshakespeare(cfg: dict, data_dir, gen: torch.Generator) -> Data:
    """Tiny Shakespeare; ``level: char | word``, ``lower`` (null: true at word level, false
    at char level), ``valid_frac`` (0.1: the last 10% of the characters)."""
    return _load(cfg, data_dir, gen)


def load_wikitext2(cfg: dict, data_dir, gen: torch.Generator) -> Data:
    """WikiText-2 (tokenized release), word level with ``<eos>`` per line."""
    return _load(cfg, data_dir, gen)


def load_ptb(cfg: dict, data_dir, gen: torch.Generator) -> Data:
    """Penn Treebank (Mikolov), word level with ``<eos>`` per line. ``train_split: valid,
    test_split: test`` gives Kunstner et al.'s TinyPTB (vocabulary still from ptb.train)."""
    return _load(cfg, data_dir, gen)
