"""Fault injection for the files and inputs of tokenizers, datasets and weights (issue 16).

Each probe is one bad input a student, a teacher or a hostile file could give; each must be
refused up front with a sentence that names the cause, and nothing may hang or allocate what a
header merely claims. Small files are written by hand (a safetensors file is an 8-byte
little-endian header length, a JSON header, then the bytes), so the whole file runs in seconds.
"""

import base64
import json
import random
import struct
import time

import pytest
import torch
from safetensors.torch import save_file

from helpers.bpe_fast import merge_by_rank
from helpers.bpe_gpt2 import from_gpt2_files
from helpers.data import DataError, fetch
from helpers.dataset import GPTDatasetV1, create_dataloader_v1, window_starts
from helpers.embeddings import sinusoidal_positions
from helpers.empty_model import shapes_only_model
from helpers.safetensors_reader import SafetensorsReader
from helpers.tokenizer import (
    ENDOFTEXT,
    GPT2_TIKTOKEN_PATTERN,
    BPETokenizer,
    build_vocab,
    gpt2_bpe_tokenizer,
    gpt2_tokenizer,
)
from helpers.weights import load_gpt2, load_model

TINY = {"vocab_size": 50, "context_length": 8, "emb_dim": 16, "n_heads": 2, "n_layers": 1,
        "drop_rate": 0.0, "qkv_bias": False}
HOSTILE_PATTERN = r"(a+)+$"  # catastrophic backtracking: "aaaa...b" takes 2**n steps


def _gpt2_files():
    try:
        return fetch("encoder.json"), fetch("vocab.bpe")
    except DataError as err:
        pytest.fail(f"GPT-2's tokenizer files are needed offline; set LLM_DATA_MIRROR ({err})")


# --- tokenizer files ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A small trained tokenizer's file, as a dict to edit."""
    folder = tmp_path_factory.mktemp("tok")
    tokenizer = BPETokenizer().train("low lower lowest newer newest " * 20, vocab_size=270)
    return json.loads(tokenizer.save(folder / "good.json").read_text(encoding="utf-8"))


def _doubling(saved):
    """Merges that double one token 40 times: 2**40 bytes = 1 TB if the bytes were built."""
    merges = [[97, 97, 256]] + [[255 + k, 255 + k, 256 + k] for k in range(1, 40)]
    return {**saved, "merges": merges, "merge_counts": None, "special_tokens": {}}


TOKENIZER_FILE_PROBES = {
    "cut in half": (lambda s: json.dumps(s)[: len(json.dumps(s)) // 2], "not valid JSON"),
    "not UTF-8": (lambda s: b"\xff\xfe\x00garbage", "not valid JSON"),
    "nested 100,000 deep": (lambda s: "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    "a JSON list": (lambda s: [1, 2, 3], "not a saved BPETokenizer"),
    "no version": (lambda s: {k: v for k, v in s.items() if k != "version"}, "format version None"),
    "hostile pattern": (lambda s: {**s, "pattern": HOSTILE_PATTERN}, "trust_pattern=True"),
    "pattern a number": (lambda s: {**s, "pattern": 5}, "corrupted"),
    "merge id a float": (lambda s: {**s, "merges": [[108, 111, 256.0]] + s["merges"][1:]},
                         "whole numbers"),
    "merge id a string": (lambda s: {**s, "merges": [["108", 111, 256]] + s["merges"][1:]},
                          "whole numbers"),
    "merge id a bool": (lambda s: {**s, "merges": [[True, 111, 256]] + s["merges"][1:]},
                        "whole numbers"),
    "merge of two ids": (lambda s: {**s, "merges": [[108, 111]]}, "corrupted"),
    "special id negative": (lambda s: {**s, "special_tokens": {ENDOFTEXT: -1}}, "whole numbers"),
    "special id a float": (lambda s: {**s, "special_tokens": {ENDOFTEXT: 279.0}}, "whole numbers"),
    "special_tokens a list": (lambda s: {**s, "special_tokens": [ENDOFTEXT]}, "corrupted"),
    "merge_counts floats": (lambda s: {**s, "merge_counts": [1.5] * len(s["merges"])},
                            "whole numbers"),
    "byte_ids too few": (lambda s: {**s, "byte_ids": list(range(255))}, "256 different ids"),
    "byte_ids repeated": (lambda s: {**s, "byte_ids": [0] * 256}, "256 different ids"),
    "merges doubling a token 40 times": (_doubling, "no real tokenizer"),
}


@pytest.mark.parametrize("probe", TOKENIZER_FILE_PROBES, ids=list(TOKENIZER_FILE_PROBES))
def test_a_bad_tokenizer_file_is_refused_naming_it(probe, saved, tmp_path):
    make, message = TOKENIZER_FILE_PROBES[probe]
    content = make(saved)
    path = tmp_path / "tok.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content), "utf-8")
    start = time.perf_counter()
    with pytest.raises(ValueError, match=message) as caught:
        BPETokenizer.load(path)
    assert str(path) in str(caught.value)
    assert time.perf_counter() - start < 5  # the doubling merges are refused, not built


def test_a_folder_is_not_a_tokenizer_file(tmp_path):
    with pytest.raises(ValueError, match="is a folder"):
        BPETokenizer.load(tmp_path)


def test_own_patterns_load_when_trusted_and_gpt2s_without(saved, tmp_path):
    own = tmp_path / "own.json"
    own.write_text(json.dumps({**saved, "pattern": r"\w+|\s+"}), "utf-8")
    assert BPETokenizer.load(own, trust_pattern=True).encode("lower low") != []
    tiktoken_form = tmp_path / "tiktoken-form.json"
    tiktoken_form.write_text(json.dumps({**saved, "pattern": GPT2_TIKTOKEN_PATTERN}), "utf-8")
    assert BPETokenizer.load(tiktoken_form).pattern == GPT2_TIKTOKEN_PATTERN
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({**saved, "pattern": "(unclosed"}), "utf-8")
    with pytest.raises(ValueError, match="corrupted"):
        BPETokenizer.load(broken, trust_pattern=True)
    with pytest.raises(ValueError, match="trust_pattern must be True or False"):
        BPETokenizer.load(own, trust_pattern="yes")


SAVE_PROBES = {
    "save to a folder": (lambda tmp: tmp, "is a folder"),
    "save under a file": (lambda tmp: tmp / "afile" / "tok.json", "is a file, not a folder"),
}


@pytest.mark.parametrize("probe", SAVE_PROBES, ids=list(SAVE_PROBES))
def test_saving_where_no_file_can_go_is_refused(probe, tmp_path):
    (tmp_path / "afile").write_text("a file where a folder is needed", encoding="utf-8")
    where, message = SAVE_PROBES[probe]
    with pytest.raises(ValueError, match=message):
        BPETokenizer().save(where(tmp_path))


def test_a_save_that_fails_halfway_keeps_the_old_file(tmp_path, monkeypatch):
    old = BPETokenizer().train("low lower lowest " * 10, vocab_size=260)
    path = old.save(tmp_path / "tok.json")
    before = path.read_bytes()

    def disk_full(self, text, *args, **kwargs):
        with open(self, "w", encoding="utf-8") as f:
            f.write(text[: len(text) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(type(path), "write_text", disk_full)
    with pytest.raises(OSError, match="No space left"):
        BPETokenizer().train("other text entirely " * 10, vocab_size=262).save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before and BPETokenizer.load(path).merges == old.merges
    assert [p.name for p in tmp_path.iterdir()] == ["tok.json"]  # no half file left beside it


GPT2_FILE_PROBES = {
    "encoder.json id a float": ("encoder", lambda text: text.replace('"!": 0', '"!": 0.0', 1),
                                "not a whole number"),
    "encoder.json nested deep": ("encoder", lambda text: "[" * 100_000, "nested too deeply"),
    "encoder.json a list": ("encoder", lambda text: "[]", "not a JSON object"),
    "vocab.bpe not UTF-8": ("vocab", lambda text: b"#version\n\xff\xfe", "not UTF-8"),
    "vocab.bpe without #version": ("vocab", lambda text: text.split("\n", 1)[1], "#version"),
}


@pytest.mark.parametrize("probe", GPT2_FILE_PROBES, ids=list(GPT2_FILE_PROBES))
def test_broken_gpt2_tokenizer_files_are_refused_naming_them(probe, tmp_path):
    encoder_path, vocab_path = _gpt2_files()
    which, change, message = GPT2_FILE_PROBES[probe]
    paths = {"encoder": tmp_path / "encoder.json", "vocab": tmp_path / "vocab.bpe"}
    for name, source in (("encoder", encoder_path), ("vocab", vocab_path)):
        text = source.read_text(encoding="utf-8")
        content = change(text) if name == which else text
        if isinstance(content, bytes):
            paths[name].write_bytes(content)
        else:
            paths[name].write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as caught:
        from_gpt2_files(paths["encoder"], paths["vocab"])
    assert str(paths[which]) in str(caught.value)


# --- special tokens and training settings ---------------------------------------------------

TRAINING_PROBES = {
    "special_tokens a string": ({"special_tokens": "<s>"}, r"pass a list, e\.g\. \['<s>'\]"),
    "special_tokens bytes": ({"special_tokens": b"<s>"}, "pass a list"),
    "special_tokens None": ({"special_tokens": None}, "must be a list of strings"),
    "special_tokens a dict": ({"special_tokens": {"<s>": 1}}, "must be a list of strings"),
    "special token a number": ({"special_tokens": ["<s>", 5]}, "non-empty strings, got 5"),
    "special token empty": ({"special_tokens": [""]}, "non-empty strings"),
    "special tokens repeated": ({"special_tokens": ["<s>", "<s>"]}, r"duplicates: \['<s>'\]"),
    "vocab_size a float": ({"vocab_size": 300.0}, "vocab_size must be an integer"),
    "vocab_size a string": ({"vocab_size": "300"}, "vocab_size must be an integer"),
    "vocab_size True": ({"vocab_size": True}, "vocab_size must be an integer"),
    "vocab_size below the bytes": ({"vocab_size": 100}, "at least 257"),
    "verbose a string": ({"verbose": "yes"}, "verbose must be True or False"),
}


@pytest.mark.parametrize("probe", TRAINING_PROBES, ids=list(TRAINING_PROBES))
def test_bad_training_settings_are_refused(probe):
    options, message = TRAINING_PROBES[probe]
    tokenizer = BPETokenizer()
    with pytest.raises(ValueError, match=message):
        tokenizer.train("some text to learn from", **{"vocab_size": 270, **options})
    assert tokenizer.merges == []  # nothing learnt, nothing changed


def test_a_special_token_string_is_not_split_into_characters():
    tokenizer = BPETokenizer().train("a b <s> c", vocab_size=258, special_tokens=["<s>"])
    assert tokenizer.special_tokens == {"<s>": 257}
    with pytest.raises(ValueError, match="pass a list"):
        build_vocab("a b c", special_tokens="<|unk|>")
    with pytest.raises(ValueError, match="duplicates"):
        build_vocab("a b c", special_tokens=["<|unk|>", "<|unk|>"])


# --- long pre-tokens: n log n, the same ids -------------------------------------------------


class _CountingRanks(dict):
    """A ranks dict that counts its look-ups: the work of an encode, without a clock."""

    lookups = 0

    def get(self, key, default=None):
        self.lookups += 1
        return super().get(key, default)

    def __getitem__(self, key):
        self.lookups += 1
        return super().__getitem__(key)


def _ranks_of(tokenizer):
    ranks = {}
    for i in sorted(tokenizer.vocab):
        ranks.setdefault(tokenizer.vocab[i], i)  # the first id learnt wins, as in set_merges
    return ranks


def test_a_200k_character_pre_token_encodes_fast_and_like_tiktoken():
    _gpt2_files()
    ours, reference = gpt2_bpe_tokenizer(), gpt2_tokenizer()
    blob = base64.b64encode(random.Random(0).randbytes(150_000)).decode()  # one pre-token
    assert len(blob) == 200_000
    ranks = _CountingRanks(_ranks_of(ours))
    ids = merge_by_rank(blob.encode(), ranks)
    assert ranks.lookups <= 4 * len(blob)  # linear; the old loop made ~n²/2 = 2 * 10**10
    start = time.perf_counter()
    assert ours.encode(blob) == reference.encode(blob) == ids
    assert time.perf_counter() - start < 30  # generous: 0.3 s here; it was about 6 minutes


def test_the_fast_merge_makes_the_listings_merges():
    """encode_chunk (notebook 01's listing) and merge_by_rank: the same ids on random chunks,
    with a tokenizer of many ties (tiny alphabet) and with GPT-2's."""
    rng = random.Random(1)
    small = BPETokenizer().train("ab" * 40 + " aab abba baab " * 20 + "aaaa" * 30, vocab_size=280)
    _gpt2_files()
    gpt2 = gpt2_bpe_tokenizer()
    for tokenizer, alphabet in ((small, "ab"), (gpt2, "abcXYZ019+/=-_é🙂 ")):
        ranks = _ranks_of(tokenizer)
        for _ in range(300):
            chunk = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 120)))
            assert merge_by_rank(chunk.encode(), ranks) == tokenizer.encode_chunk(chunk), chunk


# --- safetensors headers, checked before anything is allocated ------------------------------


def _safetensors(path, header, data=b"", header_len=None):
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    length = len(raw) if header_len is None else header_len
    path.write_bytes(struct.pack("<Q", length) + raw + data)
    return path


def _entry(dtype="F32", shape=(2,), offsets=(0, 8)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


SAFETENSORS_PROBES = {
    "shorter than 8 bytes": (b"", None, b"", "shorter than the 8-byte"),
    "header length past the end": ({"a": _entry()}, 10**6, bytes(8), "header claims 1,000,000"),
    "header length 2**63": ({}, 2**63, b"", "header claims"),
    "header not JSON": (b"{not json", None, b"", "not valid JSON"),
    "header not UTF-8": (b"\xff\xfe\xfd", None, b"", "not valid JSON"),
    "header nested deep": (b"[" * 50_000 + b"]" * 50_000, None, b"", "not valid JSON"),
    "header a list": (b"[1, 2]", None, b"", "not a JSON object"),
    "10**12 elements": ({"a": _entry(shape=(10**12,), offsets=(0, 8))}, None, bytes(8),
                        "needs 4,000,000,000,000 bytes"),
    "negative offsets": ({"a": _entry(offsets=(-8, 0))}, None, bytes(8), "data_offsets"),
    "offsets reversed": ({"a": _entry(offsets=(8, 0))}, None, bytes(8), "claims bytes 8..0"),
    "offsets past the end": ({"a": _entry(offsets=(0, 8))}, None, bytes(4), "claims bytes 0..8"),
    "offsets floats": ({"a": _entry(offsets=(0.0, 8.0))}, None, bytes(8), "data_offsets"),
    "offsets one number": ({"a": {**_entry(), "data_offsets": [8]}}, None, bytes(8),
                           "data_offsets"),
    "overlapping tensors": ({"a": _entry(offsets=(0, 8)), "b": _entry(offsets=(4, 12))}, None,
                            bytes(12), "overlaps"),
    "a gap between tensors": ({"a": _entry(offsets=(0, 8)), "b": _entry(offsets=(12, 20))},
                              None, bytes(20), "gap"),
    "trailing bytes": ({"a": _entry()}, None, bytes(12), "header says 8"),
    "unknown dtype": ({"a": _entry(dtype="F128")}, None, bytes(8), "unknown dtype 'F128'"),
    "negative size": ({"a": _entry(shape=(-2,))}, None, bytes(8), "shape"),
    "shape a string": ({"a": {**_entry(), "shape": "2"}}, None, bytes(8), "shape"),
    "shape of floats": ({"a": _entry(shape=(2.0,))}, None, bytes(8), "shape"),
    "shape of bools": ({"a": _entry(shape=(True,), offsets=(0, 4))}, None, bytes(4), "shape"),
    "no data_offsets": ({"a": {"dtype": "F32", "shape": [2]}}, None, bytes(8), "lacks"),
    "entry a number": ({"a": 5}, None, b"", "lacks"),
}


@pytest.mark.parametrize("probe", SAFETENSORS_PROBES, ids=list(SAFETENSORS_PROBES))
def test_a_hostile_safetensors_header_is_refused_before_reading(probe, tmp_path):
    header, header_len, data, message = SAFETENSORS_PROBES[probe]
    if header == b"" and header_len is None:
        path = tmp_path / "m.safetensors"
        path.write_bytes(b"\x01\x02")  # not even the length
    else:
        path = _safetensors(tmp_path / "m.safetensors", header, data, header_len)
    with pytest.raises(ValueError, match=message) as caught:
        SafetensorsReader(path)
    assert str(path) in str(caught.value) and "delete it" in str(caught.value)


def test_a_complete_hand_written_file_still_reads(tmp_path):
    header = {"__metadata__": {"format": "pt"}, "b": _entry("I8", (2,), (8, 10)), "a": _entry()}
    data = struct.pack("<2f", 1.5, 2.5) + b"\x07\x09"
    path = _safetensors(tmp_path / "m.safetensors", header, data)
    with SafetensorsReader(path) as reader:
        assert reader.get("a").tolist() == [1.5, 2.5] and reader.get("b").tolist() == [7, 9]


def test_load_gpt2_refuses_a_declared_terabyte_without_allocating_it(tmp_path):
    """The issue's case: ln_f.weight (whose dtype load_gpt2 used to read whole) claims 10**12
    elements; refused at the header, in milliseconds."""
    header = {"wte.weight": _entry(shape=(2, 2), offsets=(0, 16)),
              "h.0.attn.c_attn.bias": _entry(shape=(6,), offsets=(16, 40)),
              "ln_f.weight": _entry(shape=(10**12,), offsets=(40, 44))}
    path = _safetensors(tmp_path / "model.safetensors", header, bytes(44))
    start = time.perf_counter()
    with pytest.raises(ValueError, match="needs 4,000,000,000,000 bytes"):
        load_gpt2(str(path), n_heads=1)  # n_heads: emb_dim 2 is no GPT-2 size
    assert time.perf_counter() - start < 5


# --- weight files that fit no model, and load options ---------------------------------------


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    torch.manual_seed(0)
    from helpers.model import GPTModel

    model = GPTModel(TINY)
    path = tmp_path_factory.mktemp("tiny") / "model.safetensors"
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def _with_config(tmp_path, tiny_file, text):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(tiny_file.read_bytes())
    (folder / "config.json").write_text(text, encoding="utf-8")
    return folder


LOAD_PROBES = {
    "config.json not JSON": ({"config_json": "{'vocab_size': 50"}, "not valid JSON"),
    "config.json a list": ({"config_json": "[50, 8]"}, "not a model config"),
    "config.json vocab_size a string": (
        {"config_json": json.dumps({**TINY, "vocab_size": "50"})}, "config.json does not describe"),
    "config.json HF without n_head": (
        {"config_json": json.dumps({"n_embd": 16, "vocab_size": 50, "n_layer": 1})},
        "without n_head"),
    "config.json tie_word_embeddings 'false'": (
        {"config_json": json.dumps({"n_embd": 16, "vocab_size": 50, "n_layer": 1, "n_head": 2,
                                    "n_positions": 8, "tie_word_embeddings": "false"})},
        "tie_word_embeddings must be true or false"),
    "config asks for 10**9 tokens": ({"config": {**TINY, "vocab_size": 10**9}}, "do not fit"),
    "config a string": ({"config": "gpt2-small"}, "config must be a dict"),
    "config with a misspelt key": ({"config": {**TINY, "n_layer": 1}}, "did you mean 'n_layers'"),
    "dtype int8": ({"dtype": torch.int8}, "floating-point torch dtype"),
    "dtype a string": ({"dtype": "bfloat16"}, "floating-point torch dtype"),
    "n_heads 2.5": ({"n_heads": 2.5}, "n_heads must be a whole number"),
    "drop_rate NaN": ({"drop_rate": float("nan")}, "drop_rate must be a finite number"),
    "drop_rate 1": ({"drop_rate": 1.0}, r"drop_rate must be in \[0, 1\)"),
}


@pytest.mark.parametrize("probe", LOAD_PROBES, ids=list(LOAD_PROBES))
def test_weights_that_fit_no_model_are_refused_before_allocating(probe, tiny_file, tmp_path):
    options, message = LOAD_PROBES[probe]
    options = dict(options)
    source = tiny_file
    if "config_json" in options:
        source = _with_config(tmp_path, tiny_file, options.pop("config_json"))
    elif "config" not in options:
        options["config"] = TINY
    start = time.perf_counter()
    with pytest.raises(ValueError, match=message):
        load_model(source, **options)
    assert time.perf_counter() - start < 5  # 10**9 x 16 floats were never allocated


SOURCE_PROBES = {
    "source 124": (124, r"did you mean '124M'"),
    "source None": (None, "a GPT-2 size such as"),
    "source empty": ("", "empty source"),
    "source a misspelt size": ("gpt2-smal", "Unknown GPT-2 size"),
}


@pytest.mark.parametrize("probe", SOURCE_PROBES, ids=list(SOURCE_PROBES))
def test_a_source_that_is_no_size_and_no_path_is_refused(probe):
    source, message = SOURCE_PROBES[probe]
    with pytest.raises(ValueError, match=message):
        load_gpt2(source)


def test_the_tiny_file_itself_loads(tiny_file):
    model = load_model(tiny_file, config=TINY)
    assert model.tok_emb.weight.shape == (50, 16)


def test_a_huge_context_in_a_small_file_is_refused_before_the_masks(tmp_path):
    """Weights of 8 MB whose config asks for a 10**6 x 10**6 causal mask (4 TB)."""
    cfg = {**TINY, "context_length": 10**6, "emb_dim": 2, "n_heads": 1, "vocab_size": 5}
    state = {name: torch.zeros(p.shape) for name, p in shapes_only_model(cfg).named_parameters()}
    folder = tmp_path / "wide"
    folder.mkdir()
    save_file(state, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    with pytest.raises(ValueError, match="causal masks alone"):
        load_model(folder)


def test_weights_in_integers_are_no_model(tmp_path):
    state = {name: torch.zeros(p.shape, dtype=torch.int64)
             for name, p in shapes_only_model(TINY).named_parameters()}
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match="not stored as floating-point"):
        load_model(tmp_path / "model.safetensors", config=TINY)


def test_a_pickle_that_is_no_state_dict_is_refused(tmp_path):
    path = tmp_path / "model.pth"
    path.write_bytes(b"not a pickle at all")
    with pytest.raises(ValueError, match="could not be read as a state dict"):
        load_model(path, config=TINY)


# --- datasets and embeddings ----------------------------------------------------------------

DATASET_PROBES = {
    "max_length 0": ({"max_length": 0}, "max_length must be at least 1"),
    "max_length 2.5": ({"max_length": 2.5}, "max_length must be a whole number"),
    "max_length True": ({"max_length": True}, "max_length must be a whole number"),
    "stride 0": ({"stride": 0}, "stride must be at least 1"),
    "stride -4": ({"stride": -4}, "stride must be at least 1"),
    "stride '2'": ({"stride": "2"}, "stride must be a whole number"),
    "text shorter than a window": ({"max_length": 500}, r"needs max_length \+ 1 = 501 tokens"),
    "more batches than windows": ({"batch_size": 1000}, "fewer than batch_size=1000"),
    "batch_size 0": ({"batch_size": 0}, "batch_size"),
}


@pytest.mark.parametrize("probe", DATASET_PROBES, ids=list(DATASET_PROBES))
def test_bad_dataset_settings_are_refused(probe):
    options, message = DATASET_PROBES[probe]
    text = "one two three four five six seven eight nine ten " * 8
    _gpt2_files()
    with pytest.raises(ValueError, match=message):
        create_dataloader_v1(text, **{"batch_size": 2, "max_length": 4, "stride": 4, **options})


def test_window_starts_and_the_dataset_refuse_non_numbers():
    with pytest.raises(ValueError, match="stride must be a whole number"):
        window_starts(10, 4, 1.0)
    tokenizer = BPETokenizer().train("some text", vocab_size=257)  # bytes and <|endoftext|>
    with pytest.raises(ValueError, match="max_length must be at least 1"):
        GPTDatasetV1("some text", tokenizer, max_length=-1, stride=1)


EMBEDDING_PROBES = {
    "dim odd": ({"dim": 5}, "dim must be even"),
    "dim a float": ({"dim": 8.0}, "dim must be a whole number"),
    "dim 0": ({"dim": 0}, "dim must be at least 2"),
    "num_positions -1": ({"num_positions": -1}, "num_positions must be at least 0"),
    "num_positions a float": ({"num_positions": 4.5}, "num_positions must be a whole number"),
    "base NaN": ({"base": float("nan")}, "base must be a finite number"),
    "base 1": ({"base": 1.0}, r"base must be in \(1"),
}


@pytest.mark.parametrize("probe", EMBEDDING_PROBES, ids=list(EMBEDDING_PROBES))
def test_bad_sinusoid_settings_are_refused(probe):
    options, message = EMBEDDING_PROBES[probe]
    with pytest.raises(ValueError, match=message):
        sinusoidal_positions(**{"num_positions": 4, "dim": 8, **options})


def test_the_weights_command_line_says_one_sentence_not_a_traceback(tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "notes.txt"
    bad.write_text("not weights", encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "helpers.weights", str(bad)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    expected = f"error: {bad}: expected a folder, a .safetensors file or a .pth state dict."
    assert run.stderr.strip() == expected
