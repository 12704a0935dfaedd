"""Fault injection for issue 16, inputs: model configs, generation, classification, LoRA
adapters and instruction data. Every probe is a bad input a student, a teacher or a hostile
file could give; each must be refused before any work, in one sentence that names the cause,
and must leave what the user made (a model's adapters, a saved file) as it was.

Tiny models only (vocabulary 50, one layer): the whole file runs in seconds.
"""

import json
import math

import pandas as pd
import pytest
import torch
from safetensors.torch import save_file
from torch.utils.data import DataLoader, TensorDataset

from helpers.classify import (
    SpamDataset,
    spam_dataloaders,
    add_classification_head,
    calc_accuracy_loader,
    calc_loss_batch_classifier,
    calc_loss_loader_classifier,
    classify_review,
    confusion_matrix,
    evaluate_classifier,
    spam_probability,
    train_classifier_simple,
)
from helpers.generate import (
    apply_top_p,
    generate,
    generated_tokens,
    next_token_logits,
    sample_next_token,
    top_p_mask,
)
from helpers.instruct import (
    InstructionDataset,
    custom_collate_fn,
    generate_response,
    instruction_dataloaders,
    load_instruction_data,
    prompt_text,
    rouge_l,
    save_responses,
    score_responses,
)
from helpers.decoding_kernels import SplitLinear, decoding_kernels
from helpers.fused_attention import fused_attention
from helpers.kv_cache import CachedGPT
from helpers.lora import (
    LoRAError,
    LoRALayer,
    load_lora_adapters,
    lora_parameter_count,
    lora_state_dict,
    read_lora_info,
    replace_linear_with_lora,
    save_lora_adapters,
)
from helpers.model import GPTModel, bytes_per_parameter, parameter_breakdown, text_to_token_ids
from helpers.tokenizer import SimpleTokenizerV2, build_vocab

TINY = {
    "vocab_size": 50,
    "context_length": 8,
    "emb_dim": 16,
    "n_heads": 2,
    "n_layers": 1,
    "drop_rate": 0.0,
    "qkv_bias": False,
}
VOCAB = TINY["vocab_size"]
PROMPT = torch.tensor([[1, 2, 3]])


class CharTokenizer:
    """Every character one id below the tiny vocabulary size: enough for datasets."""

    def encode(self, text, allowed_special=None):
        return [ord(c) % (VOCAB - 1) for c in text]

    def decode(self, ids):
        return "".join(chr(97 + i % 26) for i in ids)


TOK = CharTokenizer()
GOOD_ENTRY = {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"}


def tiny_model(**changes) -> GPTModel:
    torch.manual_seed(123)
    return GPTModel({**TINY, **changes}).eval()


def classifier(num_classes=2) -> GPTModel:
    return add_classification_head(tiny_model(), num_classes).eval()


def loader(labels, dtype=torch.long) -> DataLoader:
    ids = torch.randint(0, VOCAB, (len(labels), 4))
    return DataLoader(TensorDataset(ids, torch.tensor(labels, dtype=dtype)), batch_size=2)


def spam_frame(labels, texts=None) -> pd.DataFrame:
    texts = texts if texts is not None else ["win a prize"] * len(labels)
    return pd.DataFrame({"Label": labels, "Text": texts})


# --- 1. model configs and token ids: GPTModel refuses before building or running ----------------

CONFIG_PROBES = [
    pytest.param({"n_layer": 2}, r"Unknown key.*'n_layer' \(did you mean 'n_layers'\?\)",
                 id="n_layer misspelt next to n_layers"),
    pytest.param({"dropout": 0.1}, r"Unknown key.*'dropout'", id="dropout instead of drop_rate"),
    pytest.param({"drop_rate": "0.1"}, r"drop_rate must be a finite number.*'0\.1'",
                 id="drop_rate as text"),
    pytest.param({"drop_rate": None}, r"drop_rate must be a finite number", id="drop_rate None"),
    pytest.param({"drop_rate": 1.0}, r"drop_rate must be in \[0, 1\)", id="drop_rate 1"),
    pytest.param({"drop_rate": -0.1}, r"drop_rate must be in \[0, 1\)", id="drop_rate negative"),
    pytest.param({"drop_rate": math.nan}, r"drop_rate must be a finite number", id="drop_rate NaN"),
    pytest.param({"qkv_bias": "False"}, r"qkv_bias must be True or False, got 'False'",
                 id="qkv_bias as text"),
    pytest.param({"qkv_bias": None}, r"qkv_bias must be True or False", id="qkv_bias None"),
    pytest.param({"qkv_bias": 0}, r"qkv_bias must be True or False", id="qkv_bias 0"),
    pytest.param({"emb_dim": 16.0}, r"'emb_dim'.*positive integer", id="emb_dim float"),
    pytest.param({"n_heads": True}, r"'n_heads'.*positive integer", id="n_heads True"),
    pytest.param({"vocab_size": "50"}, r"'vocab_size'.*positive integer", id="vocab_size text"),
    pytest.param({"context_length": -8}, r"'context_length'.*positive integer",
                 id="context_length negative"),
    pytest.param({"emb_dim": 15}, r"divisible by n_heads", id="emb_dim not divisible"),
]


@pytest.mark.parametrize(("changes", "message"), CONFIG_PROBES)
def test_bad_config_is_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        GPTModel({**TINY, **changes})
    with pytest.raises(ValueError, match=message):  # counting by formula too
        parameter_breakdown({**TINY, **changes})


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        pytest.param("gpt2-small", r"must be a dict.*gpt2_config", id="config a string"),
        pytest.param({k: v for k, v in TINY.items() if k != "n_heads"}, r"missing 'n_heads'",
                     id="config missing n_heads"),
    ],
)
def test_config_that_is_not_a_config(cfg, message):
    with pytest.raises(ValueError, match=message):
        GPTModel(cfg)


ID_PROBES = [
    pytest.param(torch.tensor([[1, VOCAB]]), r"Token id 50 is outside this model's vocabulary "
                 r"\(0\.\.49\).*another tokenizer", id="token id = vocab size"),
    pytest.param(torch.tensor([[50300]]), r"Token id 50300 is outside",
                 id="GPT-2 id in tiny vocab"),
    pytest.param(torch.tensor([[-1, 2]]), r"Token id -1 is outside", id="negative token id"),
    pytest.param(torch.tensor([[1.0, 2.0]]), r"must be integers.*float32", id="float ids"),
    pytest.param(torch.tensor([[True]]), r"must be integers.*bool", id="bool ids"),
    pytest.param([[1, 2]], r"expects a tensor of token ids, got a list", id="ids as a list"),
    pytest.param(torch.tensor([1, 2]), r"unsqueeze\(0\)", id="ids without batch dimension"),
    pytest.param(torch.zeros((1, 9), dtype=torch.long), r"context_length is 8",
                 id="ids longer than the context"),
]


@pytest.mark.parametrize(("ids", "message"), ID_PROBES)
def test_bad_token_ids_in_forward(ids, message):
    with pytest.raises(ValueError, match=message):
        tiny_model()(ids)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(lambda m: bytes_per_parameter(4), r"dtype must be a torch\.dtype",
                     id="dtype a number"),
        pytest.param(lambda m: fused_attention(m, enabled="no"), r"enabled must be True or False",
                     id="fused_attention enabled 'no'"),
        pytest.param(lambda m: fused_attention(TINY), r"needs a torch model",
                     id="fused_attention on a config"),
        pytest.param(lambda m: decoding_kernels(m, blocks=2.5).__enter__(),
                     r"blocks must be a whole number", id="decoding_kernels blocks 2.5"),
        pytest.param(lambda m: SplitLinear(torch.zeros(4, 4), blocks=0),
                     r"blocks must be at least 1", id="SplitLinear blocks 0"),
    ],
)
def test_bad_model_tool_settings(call, message):
    model = tiny_model()
    with pytest.raises(ValueError, match=message):
        call(model)
    assert all("forward" not in vars(m) for m in model.modules())


# --- 2. generation: refused before the first forward pass ---------------------------------------


def count_forwards(model) -> list:
    """A list that grows by one each time the token embedding runs (cached or not)."""
    calls = []
    model.tok_emb.register_forward_hook(lambda *args: calls.append(1))
    return calls


GENERATE_PROBES = [
    pytest.param({"idx": torch.tensor([[1, 60]])}, r"Token id 60 is outside.*\(0\.\.49\)",
                 id="prompt id out of vocab (cache)"),
    pytest.param({"idx": torch.tensor([[1, 60]]), "use_cache": False}, r"Token id 60 is outside",
                 id="prompt id out of vocab (no cache)"),
    pytest.param({"idx": torch.tensor([[-3]])}, r"Token id -3 is outside", id="negative prompt id"),
    pytest.param({"idx": torch.tensor([[1.5, 2.0]])}, r"must be integers", id="float prompt"),
    pytest.param({"idx": [[1, 2]]}, r"idx must be a tensor.*torch\.tensor", id="prompt as a list"),
    pytest.param({"eos_id": VOCAB}, r"eos_id 50 is outside.*\(0\.\.49\).*never stop",
                 id="eos_id = vocab size"),
    pytest.param({"eos_id": 50256}, r"eos_id 50256 is outside", id="GPT-2 eos in tiny vocab"),
    pytest.param({"eos_id": -1}, r"eos_id -1 is outside", id="eos_id negative"),
    pytest.param({"eos_id": 2.0}, r"eos_id must be a token id.*float", id="eos_id float"),
    pytest.param({"eos_id": True}, r"eos_id must be a token id.*bool", id="eos_id True"),
    pytest.param({"eos_id": "<|endoftext|>"}, r"eos_id must be a token id", id="eos_id as text"),
    pytest.param({"temperature": math.inf}, r"temperature must be >= 0.*finite",
                 id="temperature inf"),
    pytest.param({"temperature": 1e-30}, r"temperature must be >= 0.*at least 1e-06",
                 id="temperature 1e-30 (overflows)"),
    pytest.param({"temperature": "0.7"}, r"temperature must be a number", id="temperature text"),
    pytest.param({"top_p": 0.0}, r"top_p must be in \(0, 1\]", id="top_p 0"),
    pytest.param({"top_p": math.nan}, r"top_p must be in \(0, 1\]", id="top_p NaN"),
    pytest.param({"top_k": True}, r"top_k must be an integer >= 1", id="top_k True"),
    pytest.param({"max_new_tokens": True}, r"max_new_tokens must be a whole number",
                 id="max_new_tokens True"),
    pytest.param({"max_new_tokens": 2.5}, r"max_new_tokens must be a whole number",
                 id="max_new_tokens 2.5"),
    pytest.param({"max_new_tokens": -1}, r"max_new_tokens must be at least 0",
                 id="max_new_tokens negative"),
    pytest.param({"context_size": 0}, r"context_size must be at least 1", id="context_size 0"),
    pytest.param({"context_size": 16}, r"context_size 16 is larger than this model's context "
                 r"length of 8", id="context_size beyond the model (cache)"),
    pytest.param({"context_size": 16, "use_cache": False}, r"context_size 16 is larger",
                 id="context_size beyond the model (no cache)"),
]


@pytest.mark.parametrize(("changes", "message"), GENERATE_PROBES)
def test_bad_generation_input_refused_before_work(changes, message):
    model = tiny_model()
    calls = count_forwards(model)
    kwargs = {"idx": PROMPT, "max_new_tokens": 3, "context_size": 8, "temperature": 1.0,
              **changes}
    with pytest.raises(ValueError, match=message):
        generate(model, **kwargs)
    assert calls == []  # not a single forward pass ran
    assert all("forward" not in vars(m) for m in model.modules())  # no kernel left patched


def test_generation_with_a_classifier_is_refused():
    model = classifier()
    calls = count_forwards(model)
    with pytest.raises(ValueError, match=r"out_head gives 2 outputs.*classifier"):
        generate(model, PROMPT, 3, 8)
    assert calls == []


@pytest.mark.parametrize("use_cache", [True, False], ids=["NaN weights (cache)", "NaN weights"])
def test_nan_outputs_are_reported(use_cache):
    model = tiny_model()
    with torch.no_grad():
        model.out_head.weight[3, 0] = math.nan  # as training that diverged leaves it
    with pytest.raises(ValueError, match=r"outputs are NaN.*diverged training\?.*checkpoint"):
        generate(model, PROMPT, 3, 8, use_cache=use_cache)  # greedy would pick the NaN
    with pytest.raises(ValueError, match=r"outputs are NaN"):
        generate(model, PROMPT, 3, 8, temperature=1.0, use_cache=use_cache)


@pytest.mark.parametrize("text", ["Hello, do you like tea?", ""], ids=["a sentence", "empty text"])
def test_text_to_token_ids_takes_the_books_simple_tokenizers(text):
    """SimpleTokenizerV2's encode has no allowed_special: the ids come out all the same, as
    integers even for an empty text (a float tensor would be refused by the model)."""
    vocab = build_vocab("Hello, do you like tea? In the sunlit terraces", ["<|endoftext|>", "<|unk|>"])
    tokenizer = SimpleTokenizerV2(vocab)
    ids = text_to_token_ids(text, tokenizer)
    assert ids.dtype == torch.long and ids.shape == (1, len(tokenizer.encode(text)))
    assert ids[0].tolist() == tokenizer.encode(text)


@pytest.mark.parametrize("p", [1e-9, 1e-6, 5e-7], ids=["top_p 1e-9", "top_p 1e-6", "top_p 5e-7"])
def test_tiny_top_p_keeps_the_top_token(p):
    probs = torch.tensor([[0.1, 0.6, 0.3], [0.5, 0.25, 0.25]])
    assert top_p_mask(probs, p).tolist() == [[False, True, False], [True, False, False]]
    logits = torch.tensor([0.3, 2.0, -1.0])
    assert torch.isfinite(apply_top_p(logits, p)).tolist() == [False, True, False]
    model = tiny_model()
    greedy = generate(model, PROMPT, 4, 8)
    assert torch.equal(generate(model, PROMPT, 4, 8, temperature=1.0, top_p=p), greedy)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(lambda m: next_token_logits(m, [1.5, 2.7], 8), r"must be integers",
                     id="next_token_logits float list (was truncated)"),
        pytest.param(lambda m: next_token_logits(m, ["a", "b"], 8), r"Expected token ids",
                     id="next_token_logits text list"),
        pytest.param(lambda m: next_token_logits(m, [99], 8), r"Token id 99 is outside",
                     id="next_token_logits id out of vocab"),
        pytest.param(lambda m: CachedGPT(m)(torch.tensor([[VOCAB + 1]])),
                     r"Token id 51 is outside", id="CachedGPT id out of vocab"),
        pytest.param(lambda m: CachedGPT(m)(torch.tensor([[1.0]])), r"must be integers",
                     id="CachedGPT float ids"),
        pytest.param(lambda m: generated_tokens(PROMPT, 7), r"prompt_length must be at most 3",
                     id="generated_tokens prompt_length too long"),
        pytest.param(lambda m: generated_tokens(PROMPT, 1, eos_id="x"), r"eos_id must be a token",
                     id="generated_tokens eos_id text"),
        pytest.param(lambda m: sample_next_token(torch.tensor([0.0, math.nan])), r"NaN",
                     id="sample_next_token NaN logits"),
        pytest.param(lambda m: sample_next_token(torch.tensor([0.0, math.inf]), 1.0), r"infinite",
                     id="sample_next_token +inf logits"),
    ],
)
def test_bad_decoding_input(call, message):
    with pytest.raises(ValueError, match=message):
        call(tiny_model())


# --- 3. classification: a head is needed, labels must be classes -------------------------------

NO_HEAD = r"language-model head \(50 outputs.*add_classification_head\(model\) first"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(lambda m: spam_probability("win", m, TOK, "cpu"), NO_HEAD,
                     id="spam_probability without a head"),
        pytest.param(lambda m: classify_review("win", m, TOK, "cpu"), NO_HEAD,
                     id="classify_review without a head"),
        pytest.param(lambda m: calc_accuracy_loader(loader([0, 1]), m, "cpu"), NO_HEAD,
                     id="calc_accuracy_loader without a head"),
        pytest.param(lambda m: calc_loss_loader_classifier(loader([0, 1]), m, "cpu"), NO_HEAD,
                     id="calc_loss_loader_classifier without a head"),
        pytest.param(lambda m: calc_loss_batch_classifier(PROMPT, torch.tensor([1]), m, "cpu"),
                     NO_HEAD, id="calc_loss_batch_classifier without a head"),
        pytest.param(lambda m: evaluate_classifier(m, loader([0, 1]), loader([1]), "cpu", 1),
                     NO_HEAD, id="evaluate_classifier without a head"),
        pytest.param(lambda m: confusion_matrix(m, loader([0, 1]), "cpu"), NO_HEAD,
                     id="confusion_matrix without a head"),
    ],
)
def test_classifier_functions_need_a_head(call, message):
    with pytest.raises(ValueError, match=message):
        call(tiny_model())


def test_training_without_a_head_changes_nothing():
    model = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=NO_HEAD):
        train_classifier_simple(model, loader([0, 1]), loader([1, 0]), optimizer, "cpu", 1, 1, 1)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(lambda m: classify_review("win", m, TOK, "cpu"),
                     r"out_head scores 3 classes, but 2 are needed",
                     id="classify_review 3 classes"),
        pytest.param(lambda m: confusion_matrix(m, loader([0, 1]), "cpu"),
                     r"scores 3 classes, but 2", id="confusion_matrix 3 classes"),
    ],
)
def test_two_class_functions_refuse_other_heads(call, message):
    with pytest.raises(ValueError, match=message):
        call(classifier(3))


LABEL_PROBES = [
    pytest.param(spam_frame([0, 7]), r"Row 1 of the DataFrame: the label 7 is not a class",
                 id="label 7 in a 2-class dataset"),
    pytest.param(spam_frame([0.7, 1]), r"Row 0 .*label 0\.7 is not a class",
                 id="label 0.7 (was truncated to 0)"),
    pytest.param(spam_frame([1, math.nan]), r"Row 1 .*label nan", id="label NaN"),
    pytest.param(spam_frame([-1, 1]), r"label -1 is not a class", id="label -1"),
    pytest.param(spam_frame(["spam", "maybe"]), r"Row 1 .*'maybe'.*'ham' or 'spam'",
                 id="label neither ham nor spam"),
    pytest.param(spam_frame([True, False]), r"label True is not a class", id="label bool"),
    pytest.param(pd.DataFrame({"Label": [0], "text": ["hi"]}),
                 r"no 'Text' column \(did you mean 'text'\?\)", id="text column misspelt"),
    pytest.param(spam_frame([]), r"holds no messages", id="no messages"),
]


@pytest.mark.parametrize(("frame", "message"), LABEL_PROBES)
def test_bad_spam_data_is_refused(frame, message):
    with pytest.raises(ValueError, match=message):
        SpamDataset(frame, TOK, pad_token_id=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"max_length": 0}, r"at least 1 token", id="max_length 0"),
        pytest.param({"max_length": 2.5}, r"max_length must be a whole number",
                     id="max_length 2.5"),
        pytest.param({"max_length": "10"}, r"max_length must be a whole number",
                     id="max_length text"),
        pytest.param({"context_length": 0}, r"context_length must be at least 1",
                     id="context_length 0"),
        pytest.param({"pad_token_id": -1}, r"pad_token_id must be at least 0", id="pad -1"),
        pytest.param({"pad_token_id": 1.0}, r"pad_token_id must be a whole number",
                     id="pad float"),
    ],
)
def test_bad_spam_dataset_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SpamDataset(spam_frame([0, 1]), TOK, **{"pad_token_id": 0, **kwargs})


def test_spam_csv_files_are_named(tmp_path):
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("Label,Text\n0,hi\n1,a,b,c\n")
    with pytest.raises(ValueError, match=r"ragged\.csv cannot be read as a CSV file"):
        SpamDataset(ragged, TOK)
    with pytest.raises(FileNotFoundError, match=r"missing\.csv"):
        SpamDataset(tmp_path / "missing.csv", TOK)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match=r"empty\.csv cannot be read"):
        SpamDataset(empty, TOK)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(lambda m: calc_accuracy_loader(loader([0, 7]), m, "cpu"),
                     r"Class label 7 is outside range\(2\)", id="accuracy with label 7"),
        pytest.param(lambda m: calc_loss_loader_classifier(loader([0, 7]), m, "cpu"),
                     r"Class label 7 is outside range\(2\)", id="loss with label 7"),
        pytest.param(lambda m: calc_loss_loader_classifier(loader([0, 0.7], torch.float), m,
                                                            "cpu"),
                     r"integer class ids", id="loss with float labels"),
        pytest.param(lambda m: confusion_matrix(m, loader([1, -1]), "cpu"),
                     r"Class label -1 is outside", id="confusion matrix label -1"),
        pytest.param(lambda m: calc_accuracy_loader(loader([0, 1]), m, "cpu", num_batches=0.5),
                     r"num_batches must be a whole number", id="num_batches 0.5"),
        pytest.param(lambda m: spam_probability(None, m, TOK, "cpu", pad_token_id=0),
                     r"message must be a string",
                     id="message None"),
        pytest.param(lambda m: spam_probability("hi", m, TOK, "cpu", pad_token_id=50256),
                     r"pad_token_id must be at most 49", id="pad id beyond the vocabulary"),
        pytest.param(lambda m: classify_review("hi", m, TOK, "cpu", max_length=0),
                     r"max_length must be at least 1", id="classify_review max_length 0"),
        pytest.param(lambda m: spam_dataloaders(TOK, batch_size=0),
                     r"batch_size must be at least 1", id="spam_dataloaders batch_size 0"),
    ],
)
def test_bad_classifier_inputs(call, message):
    with pytest.raises(ValueError, match=message):
        call(classifier())


# --- 4. LoRA: settings, and adapter files that are damaged or lie -------------------------------


@pytest.mark.parametrize(
    ("rank", "alpha", "message"),
    [
        pytest.param(0, 8, r"rank must be a whole number >= 1", id="rank 0"),
        pytest.param(2.0, 8, r"rank must be a whole number", id="rank float"),
        pytest.param(4, math.inf, r"alpha must be a finite number > 0", id="alpha inf"),
        pytest.param(4, math.nan, r"alpha must be a finite number > 0", id="alpha NaN"),
        pytest.param(4, -1, r"alpha must be a finite number > 0", id="alpha negative"),
        pytest.param(4, "16", r"alpha must be a finite number > 0", id="alpha text"),
    ],
)
def test_bad_lora_settings(rank, alpha, message):
    with pytest.raises(ValueError, match=message):
        replace_linear_with_lora(tiny_model(), rank, alpha)
    with pytest.raises(ValueError, match=message):
        LoRALayer(4, 4, rank, alpha)


@pytest.mark.parametrize(
    ("which", "message"),
    [
        pytest.param("atention", r"'atention' \(did you mean 'attention'\?\)",
                     id="target misspelt"),
        pytest.param(None, r"which must be 'all'", id="target None"),
        pytest.param([], r"which is empty", id="no targets"),
        pytest.param(["attention", 3], r"which must be 'all'", id="target not a name"),
    ],
)
def test_bad_lora_targets(which, message):
    with pytest.raises(ValueError, match=message):
        lora_parameter_count(TINY, 4, which=which)


def adapted(alpha=8) -> GPTModel:
    model = replace_linear_with_lora(tiny_model(), rank=4, alpha=alpha)
    with torch.no_grad():
        for name, tensor in lora_state_dict(model).items():
            tensor.copy_(torch.randn_like(tensor))  # "trained": B no longer zero
    return model


def header(model) -> dict:
    layers = {name.rsplit(".lora.", 1)[0] for name in lora_state_dict(model)}
    return {"format": "llm-from-scratch lora adapters", "version": 1, "rank": 4, "alpha": 8,
            "layers": {name: {"rank": 4, "alpha": 8} for name in sorted(layers)}}


def write_adapters(path, tensors, info):
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path),
              metadata={"lora": info if isinstance(info, str) else json.dumps(info)})


def truncated(path, model):
    data = save_lora_adapters(model, path).read_bytes()
    path.write_bytes(data[: len(data) // 2])


def garbage(path, model):
    path.write_bytes(b"\x00\x01not a safetensors file at all" * 10)


def empty_file(path, model):
    path.write_bytes(b"")


def bad_json(path, model):
    write_adapters(path, lora_state_dict(model), '{"format": "llm-from-scratch lora adapters",')


def header_change(**changes):
    def make(path, model):
        write_adapters(path, lora_state_dict(model), {**header(model), **changes})
    return make


def layer_change(**changes):
    def make(path, model):
        info = header(model)
        info["layers"]["out_head"] = {**info["layers"]["out_head"], **changes}
        write_adapters(path, lora_state_dict(model), info)
    return make


def header_without_out_head(path, model):
    info = header(model)
    del info["layers"]["out_head"]
    write_adapters(path, lora_state_dict(model), info)


def tensor_change(fill):
    def make(path, model):
        tensors = dict(lora_state_dict(model))
        tensors["out_head.lora.B"] = fill(tensors["out_head.lora.B"])
        write_adapters(path, tensors, header(model))
    return make


def other_shape(path, model):
    tensors = dict(lora_state_dict(model))
    tensors["out_head.lora.A"] = torch.zeros(17, 4)  # a base model with another width
    write_adapters(path, tensors, header(model))


ADAPTER_PROBES = [
    pytest.param(truncated, r"cannot be read as a safetensors file.*truncated or damaged",
                 id="adapter file truncated"),
    pytest.param(garbage, r"cannot be read as a safetensors file", id="adapter file garbage"),
    pytest.param(empty_file, r"cannot be read as a safetensors file", id="adapter file empty"),
    pytest.param(bad_json, r"LoRA header is damaged \(not valid JSON", id="header not JSON"),
    pytest.param(header_change(alpha=-3), r"alpha -3 is not a finite number",
                 id="header alpha -3"),
    pytest.param(header_change(rank="4"), r"rank '4' is not a whole number", id="header rank text"),
    pytest.param(header_change(version=99), r"version 99.*Update the helpers",
                 id="header version from the future"),
    pytest.param(header_change(version="1"), r"version '1' is not a number",
                 id="header version text"),
    pytest.param(header_change(version=True), r"version True is not a number",
                 id="header version bool"),
    pytest.param(header_change(layers=[]), r"'layers' should name the adapted layers",
                 id="header layers not a dict"),
    pytest.param(layer_change(alpha=math.nan), r"layer 'out_head': alpha nan",
                 id="layer alpha NaN"),
    pytest.param(layer_change(alpha=1e400), r"layer 'out_head': alpha inf",
                 id="layer alpha infinite"),
    pytest.param(layer_change(rank=0), r"layer 'out_head': rank 0", id="layer rank 0"),
    pytest.param(layer_change(rank=2), r"out_head: A \(16, 4\) and B \(4, 50\) are not of the "
                 r"header's rank 2", id="layer rank disagrees with tensors"),
    pytest.param(header_without_out_head, r"out_head: no rank and alpha in the header",
                 id="header misses a layer"),
    pytest.param(header_change(layers={**header(adapted())["layers"], "trf_blocks.9.ff": {
        "rank": 4, "alpha": 8}}), r"trf_blocks\.9\.ff: in the header but no tensors",
                 id="header names a layer without tensors"),
    pytest.param(tensor_change(lambda t: t.clone().fill_(math.nan)),
                 r"out_head\.lora\.B: contains NaN", id="adapter tensor NaN"),
    pytest.param(tensor_change(lambda t: t.to(torch.int32)), r"out_head\.lora\.B: torch\.int32",
                 id="adapter tensor integer"),
    pytest.param(other_shape, r"out_head\.lora\.A: file \(17, 4\), model \(16, 4\)",
                 id="adapter for another base model"),
]


@pytest.mark.parametrize(("make_file", "message"), ADAPTER_PROBES)
def test_damaged_adapter_file_leaves_the_model_alone(tmp_path, make_file, message):
    path = tmp_path / "adapters.safetensors"
    make_file(path, adapted())
    model = replace_linear_with_lora(tiny_model(), rank=4, alpha=2)
    before = {k: v.clone() for k, v in lora_state_dict(model).items()}
    with pytest.raises(LoRAError, match=message):
        load_lora_adapters(model, path)
    assert all(torch.equal(before[k], v) for k, v in lora_state_dict(model).items())
    assert {m.lora.alpha for m in model.modules() if hasattr(m, "lora")} == {2}


def test_good_adapter_file_still_loads(tmp_path):
    saved = adapted()
    path = save_lora_adapters(saved, tmp_path / "ok.safetensors")
    assert read_lora_info(path)["rank"] == 4
    model = replace_linear_with_lora(tiny_model(), rank=4, alpha=2)
    load_lora_adapters(model, path)
    with torch.no_grad():
        torch.testing.assert_close(model(PROMPT), saved(PROMPT))


def test_saving_adapters_to_a_bad_path(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("keep me")
    with pytest.raises(ValueError, match=r"cannot write .*afile is a file"):
        save_lora_adapters(adapted(), blocker / "sub" / "a.safetensors")
    assert blocker.read_text() == "keep me"


# --- 5. instruction data: files, entries, styles, saved responses --------------------------------


def json_file(tmp_path, text, name="data.json"):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


INSTRUCTION_FILE_PROBES = [
    pytest.param('[{"instruction": "a", "input": "", "output": "b"},', ValueError,
                 r"data\.json is not valid JSON \(.* at line 1", id="JSON cut short"),
    pytest.param('{"instruction": "a", "input": "", "output": "b"}', ValueError,
                 r"data\.json: Instruction data must be a list of entries, got dict",
                 id="one entry, not a list"),
    pytest.param(json.dumps([GOOD_ENTRY, {"instruction": "a", "input": ""}]), ValueError,
                 r"(?s)data\.json: 1 of 2 .*entry 1: has no 'output'", id="entry without output"),
    pytest.param(json.dumps([GOOD_ENTRY, {**GOOD_ENTRY, "input": 3}]), ValueError,
                 r"(?s)data\.json: .*entry 1: 'input' is a int", id="input a number"),
    pytest.param("[]", ValueError, r"data\.json: Instruction data holds no entries",
                 id="empty list"),
    pytest.param(b"\xff\xfe[\x00]\x00", ValueError, r"data\.json is not a UTF-8 text file",
                 id="not UTF-8"),
    pytest.param("", ValueError, r"data\.json is not valid JSON", id="empty file"),
]


@pytest.mark.parametrize(("text", "error", "message"), INSTRUCTION_FILE_PROBES)
def test_bad_instruction_file(tmp_path, text, error, message):
    with pytest.raises(error, match=message):
        load_instruction_data(json_file(tmp_path, text))


def test_missing_instruction_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No instruction data file at .*nope\.json"):
        load_instruction_data(tmp_path / "nope.json")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(lambda: prompt_text(GOOD_ENTRY, "Alpaca"),
                     r"style must be one of .*'Alpaca' \(did you mean 'alpaca'\?\)",
                     id="style capitalised"),
        pytest.param(lambda: prompt_text(GOOD_ENTRY, None), r"style must be one of",
                     id="style None"),
        pytest.param(lambda: InstructionDataset([GOOD_ENTRY, {"input": ""}], TOK),
                     r"entry 1: has no 'instruction'", id="dataset with a bad entry"),
        pytest.param(lambda: InstructionDataset(GOOD_ENTRY, TOK), r"must be a list",
                     id="dataset given one entry"),
        pytest.param(lambda: custom_collate_fn([]), r"batch is empty", id="empty batch"),
        pytest.param(lambda: instruction_dataloaders(TOK, batch_size=0, data=[GOOD_ENTRY] * 20),
                     r"batch_size must be at least 1", id="batch_size 0"),
        pytest.param(lambda: instruction_dataloaders(TOK, style="chatml", data=[GOOD_ENTRY] * 20),
                     r"style must be one of", id="loaders style unknown"),
        pytest.param(lambda: instruction_dataloaders(TOK, allowed_max_length=1.5,
                                                     data=[GOOD_ENTRY] * 20),
                     r"allowed_max_length must be a whole number", id="allowed_max_length 1.5"),
        pytest.param(lambda: generate_response(tiny_model(), TOK, {"input": "x"}),
                     r"has no 'instruction'.*a prompt needs",
                     id="respond to an entry without instruction"),
        pytest.param(lambda: generate_response(tiny_model(), TOK, GOOD_ENTRY, max_new_tokens=2),
                     r"eos_id 50256 is outside", id="respond with GPT-2's eos in a tiny vocab"),
        pytest.param(lambda: score_responses([GOOD_ENTRY]), r"Entry 0 has no text under "
                     r"'model_response'", id="score without responses"),
        pytest.param(lambda: rouge_l(None, "x"), r"candidate is a NoneType", id="rouge_l None"),
    ],
)
def test_bad_instruction_inputs(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_saving_responses_loses_nothing(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with pytest.raises(ValueError, match=r"save_responses path: cannot write .*afile is a file"):
        save_responses([GOOD_ENTRY], blocker / "sub" / "responses.json")
    saved = save_responses([GOOD_ENTRY], tmp_path / "responses.json")
    with pytest.raises(ValueError, match=r"Cannot save the responses to .*responses\.json: .*"
                       r"Tensor.*str\(\)"):
        save_responses([{**GOOD_ENTRY, "model_response": torch.tensor(5)}], saved)
    assert json.loads(saved.read_text()) == [GOOD_ENTRY]  # the earlier, complete file is kept
