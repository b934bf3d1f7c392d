"""Language data: tokenisation, windows, tiny files in the original formats, offline errors."""
from __future__ import annotations

import os
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
import yaml

import datasets
from datasets.base import DataMissingError
from datasets.text import (EOS, UNK, Vocab, build_vocab, detokenize, load_corpus,
                           make_windows, tokenize)

CONF = Path(__file__).resolve().parents[1] / "conf" / "dataset"

SHAKESPEARE = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
    "All:\nSpeak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n\n"
    "All:\nResolved. resolved.\n\nFirst Citizen:\nFirst, you know Caius Marcius is chief enemy "
    "to the people.\n\nAll:\nWe know't, we know't.\n\nMENENIUS:\n'Tis o'er-ripe; 2 fools, 10 knaves!\n"
) * 6

# WikiText-2 tokenized release: lines start with a space, headings " = X = ", blank lines " ",
# "@-@" number/hyphen tokens and <unk> already in the text.
WT2_TRAIN = (
    " \n = Valkyria Chronicles III = \n \n"
    " Senjō no Valkyria 3 : <unk> Chronicles ( Japanese : 戦場のヴァルキュリア3 , lit . Valkyria of the"
    " Battlefield 3 ) , commonly referred to as Valkyria Chronicles III outside Japan , is a tactical"
    " role @-@ playing video game developed by Sega and Media.Vision for the PlayStation Portable . \n"
    " The game began development in 2010 , carrying over a large portion of the work done on"
    " Valkyria Chronicles II . \n \n = = Gameplay = = \n \n"
    " As with previous <unk> Chronicles games , Valkyria Chronicles III is a tactical role @-@ playing"
    " game where players take control of a military unit . \n"
)
WT2_VALID = " \n = Homarus gammarus = \n \n Homarus gammarus , known as the European lobster , is a species . \n"
WT2_TEST = " \n = Robert Boulter = \n \n Robert Boulter is an English film and television actor . \n"

# Mikolov's PTB: lower-case, one sentence per line, a leading space, <unk> and N for numbers.
PTB_TRAIN = (
    " aer banknote berlitz calloway centrust cluett fromstein gitano guterman \n"
    " pierre <unk> N years old will join the board as a nonexecutive director nov. N \n"
    " mr. <unk> is chairman of <unk> n.v. the dutch publishing group \n"
) * 4
PTB_VALID = " consumers may want to move their telephones a little closer to the tv set \n" * 3
PTB_TEST = " no it was n't black monday \n but while the new york stock exchange did n't fall \n" * 3


def _cfg(name, **kw):
    """The yaml defaults of ``name`` overridden by ``kw`` (so the yaml is exercised too)."""
    with open(CONF / f"{name}.yaml") as f:
        cfg = yaml.safe_load(f)
    assert cfg["name"] == name
    unknown = set(kw) - set(cfg)
    assert not unknown, f"test uses keys missing from {name}.yaml: {unknown}"
    cfg.update(kw)
    return cfg


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _write(folder: Path, files: dict):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")


@pytest.fixture
def no_network(monkeypatch):
    """Make every network access fail (and record the attempts)."""
    attempts = []

    def fail_urlopen(url, *a, **k):
        attempts.append(url if isinstance(url, str) else url.full_url)
        raise urllib.error.URLError("network disabled in tests")

    def fail_connect(*a, **k):
        raise OSError("network disabled in tests")

    monkeypatch.setattr(urllib.request, "urlopen", fail_urlopen)
    monkeypatch.setattr(socket, "create_connection", fail_connect)
    monkeypatch.setattr(socket.socket, "connect", fail_connect)
    return attempts


# ----------------------------------------------------------------------------- tokenisation
def test_char_round_trip():
    text = SHAKESPEARE[:300]
    vocab = Vocab(sorted(set(text)))
    ids = vocab.encode(tokenize(text, "char"))
    assert ids.dtype == torch.int64 and ids.numel() == len(text)
    assert detokenize(vocab.decode(ids), "char") == text


def test_word_round_trip_and_tokenizer_rules():
    toks = tokenize(SHAKESPEARE, "word", lower=True)
    assert toks[:6] == ["first", "citizen", ":", "\n", "before", "we"]
    assert "o'er" in toks and "'" in toks and "tis" in toks and "10" in toks
    assert "\n" in toks and not any(t.strip() == "" and t != "\n" for t in toks)
    assert toks.count("\n") == SHAKESPEARE.count("\n")
    # text -> tokens -> text -> tokens is the identity on tokens
    assert tokenize(detokenize(toks, "word"), "word") == toks
    vocab = build_vocab(toks)
    ids = vocab.encode(toks)
    assert vocab.decode(ids) == toks
    assert tokenize(detokenize(vocab.decode(ids), "word"), "word") == toks
    # case is kept without lower
    assert "First" in tokenize(SHAKESPEARE, "word", lower=False)


def test_space_format_round_trip():
    toks = tokenize(PTB_TRAIN, "space")
    assert toks.count(EOS) == PTB_TRAIN.count("\n")
    assert toks[:3] == ["aer", "banknote", "berlitz"]
    assert tokenize(detokenize(toks, "space"), "space") == toks


def test_vocab_order_max_vocab_and_unk():
    toks = list("aaaabbbccd")
    v = build_vocab(toks)
    assert v.itos == ["a", "b", "c", "d"] and v.unk_index is None
    v = build_vocab(toks, max_vocab=3)
    assert v.itos == ["a", "b", UNK] and len(v) == 3
    assert v.encode(["a", "d", "z"]).tolist() == [0, 2, 2]
    v = build_vocab(toks, min_count=2)
    assert v.itos == ["a", "b", "c", UNK]
    with pytest.raises(KeyError):
        build_vocab(toks).encode(["z"])


def test_make_windows_shapes_targets_and_stride():
    s = torch.arange(100)
    x, y = make_windows(s, 10)
    assert x.shape == y.shape == (9, 10)  # (100 - 1) // 10 non-overlapping windows
    assert torch.equal(y, x + 1) and torch.equal(x[:, 1:], y[:, :-1])
    assert torch.equal(x.reshape(-1), s[:90])
    x, y = make_windows(s, 10, stride=5)
    assert x.shape == (18, 10) and torch.equal(x[1], s[5:15]) and torch.equal(y[1], s[6:16])
    x, _ = make_windows(s[:5], 10)
    assert x.shape == (0, 10)


# ----------------------------------------------------------------------------- loaders on tiny files
def test_tinyshakespeare_char_tiny_file(tmp_path, no_network):
    _write(tmp_path / "tinyshakespeare", {"input.txt": SHAKESPEARE})
    d = datasets.load(_cfg("tinyshakespeare", seq_len=16), tmp_path, _gen())
    assert not no_network
    cut = int(len(SHAKESPEARE) * 0.9)
    assert d.task == "lm" and d.num_classes == len(set(SHAKESPEARE))
    assert d.x_train.dtype == torch.int64 and d.x_train.shape == ((cut - 1) // 16, 16)
    assert d.y_train.shape == d.x_train.shape and d.x_test.shape == ((len(SHAKESPEARE) - cut - 1) // 16, 16)
    assert torch.equal(d.x_train[:, 1:], d.y_train[:, :-1])
    assert torch.equal(d.x_train[1:, 0], d.y_train[:-1, -1])  # windows tile the stream
    vocab, train_ids, test_ids, level = load_corpus(_cfg("tinyshakespeare"), tmp_path)
    assert detokenize(vocab.decode(d.x_train[0]), level) == SHAKESPEARE[:16]
    assert detokenize(vocab.decode(test_ids), level) == SHAKESPEARE[cut:]
    info = d.info
    assert info["vocab_size"] == d.num_classes and info["level"] == "char"
    assert len(info["class_counts"]) == d.num_classes
    assert sum(info["class_counts"]) == info["n_tokens"] == d.y_train.numel()
    assert torch.equal(torch.tensor(info["class_counts"]), torch.bincount(d.y_train.reshape(-1), minlength=d.num_classes))


def test_tinyshakespeare_word_level_subset_and_stride(tmp_path):
    _write(tmp_path / "tinyshakespeare", {"input.txt": SHAKESPEARE})
    cfg = _cfg("tinyshakespeare", level="word", seq_len=8)
    d = datasets.load(cfg, tmp_path, _gen())
    vocab, train_ids, _, level = load_corpus(cfg, tmp_path)
    assert d.info["level"] == "word" and d.num_classes == len(vocab)
    assert vocab.itos[vocab.unk_index] == UNK
    assert all(t == t.lower() for t in vocab.itos if t != UNK)  # lower by default at word level
    counts = d.info["class_counts"]
    assert counts[0] == max(counts)  # ids ordered by frequency
    assert torch.equal(d.x_train[:, 1:], d.y_train[:, :-1])
    words = vocab.decode(d.x_train[0])
    assert words == tokenize(SHAKESPEARE, "word", lower=True)[:8]
    # max_vocab caps the vocabulary, rare words become <unk>
    d5 = datasets.load({**cfg, "max_vocab": 5}, tmp_path, _gen())
    assert d5.num_classes == 5 and len(d5.info["class_counts"]) == 5
    # subset: first K (seed independent) and random (reproducible with gen, in corpus order)
    n = d.n_train
    first = datasets.load({**cfg, "subset": 3}, tmp_path, _gen(1))
    assert torch.equal(first.x_train, d.x_train[:3])
    r1 = datasets.load({**cfg, "subset": 3, "subset_mode": "random"}, tmp_path, _gen(7))
    r2 = datasets.load({**cfg, "subset": 3, "subset_mode": "random"}, tmp_path, _gen(7))
    assert torch.equal(r1.x_train, r2.x_train) and r1.n_train == 3 < n
    rows = [int((d.x_train == row).all(1).nonzero()[0]) for row in r1.x_train]
    assert rows == sorted(rows)
    assert sum(r1.info["class_counts"]) == 3 * 8
    # overlapping windows and test_subset
    ov = datasets.load({**cfg, "stride": 4, "test_subset": 1}, tmp_path, _gen())
    assert torch.equal(ov.x_train[1, :4], d.x_train[0, 4:]) and ov.x_test.shape == (1, 8)


def test_wikitext2_tiny_files(tmp_path, no_network):
    _write(tmp_path / "wikitext-2", {"wiki.train.tokens": WT2_TRAIN, "wiki.valid.tokens": WT2_VALID,
                                     "wiki.test.tokens": WT2_TEST})
    cfg = _cfg("wikitext2", seq_len=8)
    d = datasets.load(cfg, tmp_path, _gen())
    assert not no_network
    vocab, train_ids, test_ids, level = load_corpus(cfg, tmp_path)
    # PyTorch word-LM convention: line.split() + ['<eos>'] for every line, blank lines included
    expected = []
    for line in WT2_TRAIN.split("\n")[:-1]:
        expected += line.split() + [EOS]
    assert vocab.decode(train_ids) == expected
    assert "@-@" in vocab.stoi and "戦場のヴァルキュリア3" in vocab.stoi and "Media.Vision" in vocab.stoi
    assert vocab.itos.count(UNK) == 1  # the corpus' own <unk> is reused
    # valid words unseen in train map to <unk>
    assert vocab.decode(test_ids)[:4] == [EOS, "=", UNK, UNK]
    assert d.num_classes == len(vocab) == d.info["vocab_size"]
    assert d.x_train.shape == ((len(expected) - 1) // 8, 8)
    assert torch.equal(d.x_train.reshape(-1), train_ids[: d.x_train.numel()])
    assert torch.equal(d.y_train.reshape(-1), train_ids[1: d.x_train.numel() + 1])
    assert d.x_test.shape[1] == 8 and d.info["level"] == "word"


def test_ptb_tiny_files_and_tiny_ptb(tmp_path, no_network):
    _write(tmp_path / "ptb", {"ptb.train.txt": PTB_TRAIN, "ptb.valid.txt": PTB_VALID, "ptb.test.txt": PTB_TEST})
    cfg = _cfg("ptb", seq_len=5)
    d = datasets.load(cfg, tmp_path, _gen())
    assert not no_network
    vocab, train_ids, test_ids, _ = load_corpus(cfg, tmp_path)
    n_tok = len(PTB_TRAIN.split()) + PTB_TRAIN.count("\n")
    assert train_ids.numel() == n_tok == d.info["n_tokens_corpus"]
    assert vocab.decode(train_ids[:10]) == PTB_TRAIN.split()[:9] + [EOS]
    assert d.x_train.shape == ((n_tok - 1) // 5, 5)
    assert torch.equal(d.x_train[:, 1:], d.y_train[:, :-1])
    # TinyPTB: train on 'valid', evaluate on 'test', vocabulary from 'train'
    tiny = datasets.load(_cfg("ptb", seq_len=5, train_split="valid", test_split="test"), tmp_path, _gen())
    assert tiny.num_classes == d.num_classes
    v_tokens = tokenize(PTB_VALID, "space")
    assert tiny.info["n_tokens_corpus"] == len(v_tokens)
    assert vocab.decode(tiny.x_train[0]) == [t if t in vocab.stoi else UNK for t in v_tokens[:5]]


@pytest.mark.parametrize("name,folder,fname,url_part", [
    ("tinyshakespeare", "tinyshakespeare", "input.txt", "karpathy/char-rnn"),
    ("wikitext2", "wikitext-2", "wiki.train.tokens", "wikitext-2-v1.zip"),
    ("ptb", "ptb", "ptb.train.txt", "ptb.train.txt"),
])
@pytest.mark.parametrize("download", [True, False])
def test_offline_error_is_one_line_naming_file_url_and_folder(tmp_path, no_network, name, folder,
                                                              fname, url_part, download):
    with pytest.raises(DataMissingError) as e:
        datasets.load(_cfg(name, download=download), tmp_path, _gen())
    msg = str(e.value)
    assert "\n" not in msg
    assert str(tmp_path / folder / fname) in msg
    assert url_part in msg and "http" in msg
    assert f"in {tmp_path / folder}" in msg
    assert bool(no_network) == download  # attempted only when allowed, and it failed
    assert not list((tmp_path / folder).glob("*.part")) if (tmp_path / folder).exists() else True


# ----------------------------------------------------------------------------- real corpus
def _shared_data() -> Path | None:
    for cand in (os.environ.get("DATA_DIR"), Path(__file__).resolve().parents[2] / "shared" / "data",
                 "/work/shared/data"):
        if cand and (Path(cand) / "tinyshakespeare" / "input.txt").is_file():
            return Path(cand)
    return None


def test_real_tinyshakespeare():
    root = _shared_data()
    if root is None:
        pytest.skip("Tiny Shakespeare not found (set DATA_DIR or provide ../shared/data)")
    d = datasets.load(_cfg("tinyshakespeare", download=False), root, _gen())
    assert d.num_classes == 65  # nanoGPT's character vocabulary
    n_chars = len((root / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8"))
    n_train = int(n_chars * 0.9)
    assert d.x_train.shape == ((n_train - 1) // 64, 64)
    assert torch.equal(d.x_train[:, 1:], d.y_train[:, :-1])
    counts = torch.tensor(d.info["class_counts"])
    assert counts.argmax() == 1  # ' ' (id 1 after '\n') is the most frequent character
    w = datasets.load(_cfg("tinyshakespeare", level="word", download=False), root, _gen())
    wc = torch.tensor(w.info["class_counts"])
    assert 5_000 < w.num_classes < 30_000
    # heavy tail: the 1% most frequent words cover far more than half of the tokens
    top = wc.sort(descending=True).values
    assert top[: w.num_classes // 100].sum() > 0.5 * wc.sum()


def test_download_extracts_the_official_archive_layouts(tmp_path, monkeypatch):
    """The download path, with the network replaced by local archives in the official layouts:
    wikitext-2-v1.zip (wikitext-2/wiki.*.tokens) and simple-examples.tgz
    (./simple-examples/data/ptb.*.txt, reached after the per-file PTB URLs fail)."""
    import tarfile
    import zipfile

    import datasets.text as text

    src = tmp_path / "src"
    src.mkdir()
    with zipfile.ZipFile(src / "wikitext-2-v1.zip", "w") as z:
        for split, body in (("train", WT2_TRAIN), ("valid", WT2_VALID), ("test", WT2_TEST)):
            z.writestr(f"wikitext-2/wiki.{split}.tokens", body)
    with tarfile.open(src / "simple-examples.tgz", "w:gz") as t:
        for split, body in (("train", PTB_TRAIN), ("valid", PTB_VALID), ("test", PTB_TEST)):
            f = src / f"ptb.{split}.txt"
            f.write_text(body)
            t.add(f, arcname=f"./simple-examples/data/ptb.{split}.txt")
    fetched = []

    def fake_fetch(url, dest):
        fetched.append(url)
        name = url.rsplit("/", 1)[-1]
        if not (src / name).is_file() or name.startswith("ptb."):  # per-file PTB mirror "down"
            raise urllib.error.URLError("unreachable")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes((src / name).read_bytes())

    monkeypatch.setattr(text, "_fetch", fake_fetch)
    root = tmp_path / "data"
    wt = datasets.load(_cfg("wikitext2", seq_len=8), root, _gen())
    assert fetched == [text.WIKITEXT2_URLS[0]]
    assert (root / "wikitext-2" / "wiki.valid.tokens").read_text() == WT2_VALID
    assert wt.n_train > 0 and not list((root / "wikitext-2").glob("download.*"))
    fetched.clear()
    ptb = datasets.load(_cfg("ptb", seq_len=5), root, _gen())
    assert fetched == [text.PTB_FILE_URL.format(file="ptb.train.txt"), text.PTB_TGZ_URL]
    assert (root / "ptb" / "ptb.test.txt").read_text() == PTB_TEST and ptb.n_train > 0
    fetched.clear()
    datasets.load(_cfg("ptb", seq_len=5), root, _gen())  # present now: no download
    assert fetched == []
