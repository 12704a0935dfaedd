"""helpers.model: the book's numbers, counting by formula, and state-dict compatibility.

The 124M model is built once (module fixture); larger GPT-2 sizes are only counted by formula.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers.model import (
    CONFIG_FIELDS,
    GELU,
    GPT2_SIZES,
    GPT_CONFIG_124M,
    GPT_CONFIG_355M,
    GPT_CONFIG_774M,
    GPT_CONFIG_1558M,
    FeedForward,
    GPTModel,
    LayerNorm,
    TransformerBlock,
    bytes_per_parameter,
    count_parameters,
    flops_per_token,
    generate_text_simple,
    gpt2_config,
    model_memory,
    parameter_breakdown,
    text_to_token_ids,
    token_ids_to_text,
)

TINY = {
    "vocab_size": 97,
    "context_length": 8,
    "emb_dim": 16,
    "n_heads": 4,
    "n_layers": 2,
    "drop_rate": 0.1,
    "qkv_bias": False,
}
MB = 1024**2  # the book's megabyte


@pytest.fixture(scope="module")
def book_model():
    """GPTModel(GPT_CONFIG_124M) built right after torch.manual_seed(123), as in the book, and
    the random-number state at that moment (the book's first forward pass uses dropout)."""
    torch.manual_seed(123)
    model = GPTModel(GPT_CONFIG_124M)
    return model, torch.get_rng_state()


# --- LayerNorm, GELU, FeedForward, TransformerBlock -------------------------------------------


def test_layer_norm_on_the_books_example():
    torch.manual_seed(123)
    batch_example = torch.randn(2, 5)
    out = nn.Sequential(nn.Linear(5, 6), nn.ReLU())(batch_example)
    book = [[0.2260, 0.3470, 0.0, 0.2216, 0.0, 0.0], [0.2133, 0.2394, 0.0, 0.5198, 0.3297, 0.0]]
    torch.testing.assert_close(out, torch.tensor(book), atol=1e-4, rtol=0)

    norm = LayerNorm(6)
    assert [name for name, _ in norm.named_parameters()] == ["scale", "shift"]
    assert torch.equal(norm.scale, torch.ones(6)) and torch.equal(norm.shift, torch.zeros(6))
    normed = norm(out)
    torch.testing.assert_close(normed.mean(dim=-1), torch.zeros(2), atol=1e-6, rtol=0)
    # eps = 1e-5 against a variance of ~0.02 leaves the variance just under 1
    torch.testing.assert_close(normed.var(dim=-1, unbiased=False), torch.ones(2), atol=1e-3, rtol=0)
    torch.testing.assert_close(normed, F.layer_norm(out, (6,), eps=1e-5))

    x = torch.randn(3, 4, 32) * 7 + 3
    normed = LayerNorm(32)(x)
    torch.testing.assert_close(normed.mean(dim=-1), torch.zeros(3, 4), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        normed.var(dim=-1, unbiased=False), torch.ones(3, 4), atol=1e-4, rtol=0
    )


def test_gelu_is_the_tanh_approximation():
    x = torch.linspace(-6, 6, 1001)
    expected = 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    torch.testing.assert_close(GELU()(x), expected)
    torch.testing.assert_close(GELU()(x), F.gelu(x, approximate="tanh"))
    assert GELU()(torch.tensor(0.0)) == 0
    assert -0.2 < GELU()(torch.tensor(-0.5)) < 0  # slightly negative, unlike ReLU
    torch.testing.assert_close(GELU()(torch.tensor([8.0, -8.0])), torch.tensor([8.0, 0.0]))


def test_feed_forward_and_block_match_the_books_counts():
    torch.manual_seed(123)
    ffn = FeedForward(GPT_CONFIG_124M)
    assert [type(layer) for layer in ffn.layers] == [nn.Linear, GELU, nn.Linear]
    assert ffn.layers[0].weight.shape == (3072, 768) and ffn.layers[2].weight.shape == (768, 3072)
    assert ffn(torch.rand(2, 3, 768)).shape == (2, 3, 768)
    assert count_parameters(ffn) == 4_722_432 == 768 * 3072 + 3072 + 3072 * 768 + 768

    block = TransformerBlock(GPT_CONFIG_124M)
    assert count_parameters(block.att) == 2_360_064 == 3 * 768 * 768 + 768 * 768 + 768
    assert count_parameters(block.ff) == 4_722_432
    assert block(torch.rand(2, 4, 768)).shape == (2, 4, 768)
    breakdown = parameter_breakdown(GPT_CONFIG_124M)
    assert breakdown["attention"].per_block == 2_360_064
    assert breakdown["feed-forward"].per_block == 4_722_432
    assert breakdown["layer norms"].per_block == count_parameters(block.norm1) * 2 == 4 * 768


def test_block_is_pre_norm_with_shortcuts():
    torch.manual_seed(0)
    block = TransformerBlock(TINY).eval()
    x = torch.randn(2, 5, 16)
    after_att = x + block.att(block.norm1(x))
    expected = after_att + block.ff(block.norm2(after_att))
    torch.testing.assert_close(block(x), expected)


# --- the book's 124M model ----------------------------------------------------------------------


def test_book_batch_gives_the_books_logits(book_model, gpt2):
    model, rng_after_init = book_model
    batch = torch.stack(
        [
            torch.tensor(gpt2.encode("Every effort moves you")),
            torch.tensor(gpt2.encode("Every day holds a")),
        ]
    )
    assert batch.tolist() == [[6109, 3626, 6100, 345], [6109, 1110, 6622, 257]]
    torch.set_rng_state(rng_after_init)  # as if the forward pass came right after the init
    model.train()  # the book's first forward pass is in training mode: dropout is on
    with torch.no_grad():
        out = model(batch)
    assert out.shape == (2, 4, 50257)
    close = dict(atol=1e-4, rtol=0)
    torch.testing.assert_close(out[0, 0, :3], torch.tensor([0.3613, 0.4222, -0.0711]), **close)
    torch.testing.assert_close(out[0, 0, -3:], torch.tensor([0.3483, 0.4661, -0.2838]), **close)
    torch.testing.assert_close(out[1, 0, :3], torch.tensor([-0.2564, 0.0900, 0.0335]), **close)
    torch.testing.assert_close(out[1, 3, :3], torch.tensor([-0.1565, 0.3926, 0.3288]), **close)


def test_book_parameter_counts(book_model):
    model, _ = book_model
    assert count_parameters(model) == 163_009_536
    assert model.tok_emb.weight.shape == (50257, 768)
    assert model.out_head.weight.shape == (50257, 768)
    assert count_parameters(model) - model.out_head.weight.numel() == 124_412_160
    breakdown = parameter_breakdown(GPT_CONFIG_124M)
    assert breakdown.total == 163_009_536 and breakdown.total_tied == 124_412_160
    assert breakdown.to_dict() == {
        "token embedding": model.tok_emb.weight.numel(),
        "position embedding": model.pos_emb.weight.numel(),
        "attention": sum(count_parameters(b.att) for b in model.trf_blocks),
        "feed-forward": sum(count_parameters(b.ff) for b in model.trf_blocks),
        "layer norms": sum(
            count_parameters(b.norm1) + count_parameters(b.norm2) for b in model.trf_blocks
        ),
        "final norm": count_parameters(model.final_norm),
        "output head": count_parameters(model.out_head),
    }
    assert f"{model_memory(model) / MB:.2f}" == "621.83"
    assert model_memory(GPT_CONFIG_124M, "float32") == model_memory(model)
    assert model_memory(GPT_CONFIG_124M, torch.bfloat16) == 2 * 163_009_536


def test_book_generation(book_model, gpt2):
    model, _ = book_model
    model.eval()
    encoded = text_to_token_ids("Hello, I am", gpt2)
    assert encoded.tolist() == [[15496, 11, 314, 716]]
    out = generate_text_simple(model, encoded, max_new_tokens=6, context_size=1024)
    assert out.tolist() == [[15496, 11, 314, 716, 27018, 24086, 47843, 30961, 42348, 7267]]
    assert token_ids_to_text(out, gpt2) == "Hello, I am Featureiman Byeswickattribute argue"


# --- counting by formula ------------------------------------------------------------------------


def test_gpt2_sizes_by_formula():
    # (total as the book's GPTModel builds it, total with the output head tied): the book's
    # exercise 4.2 numbers, and the same plus the query/key/value biases of OpenAI's checkpoints,
    # which are the counts Hugging Face reports for gpt2, gpt2-medium, -large and -xl.
    expected = {
        "small": (163_009_536, 124_412_160, 124_439_808, 621.83),
        "medium": (406_212_608, 354_749_440, 354_823_168, 1549.58),
        "large": (838_220_800, 773_891_840, 774_030_080, 3197.56),
        "xl": (1_637_792_000, 1_557_380_800, 1_557_611_200, 6247.68),
    }
    assert [GPT_CONFIG_355M, GPT_CONFIG_774M, GPT_CONFIG_1558M] == [
        gpt2_config(s) for s in ("medium", "large", "xl")
    ]
    for size, (total, tied, tied_with_bias, megabytes) in expected.items():
        cfg = gpt2_config(size)
        breakdown = parameter_breakdown(cfg)
        assert (breakdown.total, breakdown.total_tied) == (total, tied), size
        assert parameter_breakdown({**cfg, "qkv_bias": True}).total_tied == tied_with_bias
        assert round(model_memory(cfg) / MB, 2) == megabytes
        assert model_memory(cfg, "float16", tied=True) == 2 * tied
        # the size in each name is the tied count with biases, rounded
        name = next(n for n in GPT2_SIZES if n.startswith(f"gpt2-{size}"))
        named_millions = int(name.split("(")[1].rstrip("M)"))
        assert abs(tied_with_bias / 1e6 - named_millions) < 1, name


@pytest.mark.parametrize(
    "changes",
    [{}, {"qkv_bias": True}, {"n_layers": 3, "vocab_size": 50}, {"emb_dim": 24, "n_heads": 3}],
)
def test_formula_equals_instantiated_tiny_models(changes):
    cfg = {**TINY, **changes}
    model = GPTModel(cfg)
    breakdown = parameter_breakdown(cfg)
    assert (
        breakdown.total
        == count_parameters(model)
        == sum(r["parameters"] for r in breakdown.records())
    )
    assert breakdown["attention"].count == sum(count_parameters(b.att) for b in model.trf_blocks)
    assert breakdown["attention"].copies == cfg["n_layers"]
    model.out_head.weight = model.tok_emb.weight  # weight tying: one matrix, counted once
    assert count_parameters(model) == breakdown.total_tied
    assert sum(r["share"] for r in breakdown.records()) == pytest.approx(1)


def test_flops_per_token_follows_kaplan():
    d, n_layers, ctx, vocab = 768, 12, 1024, 50257
    non_embedding = 163_009_536 - 2 * vocab * d - ctx * d  # blocks and the final norm
    assert non_embedding == 12 * (12 * d * d + 10 * d) + 2 * d
    kaplan = 2 * non_embedding + 2 * n_layers * ctx * d
    assert flops_per_token(GPT_CONFIG_124M) == kaplan == 188_931_072
    assert flops_per_token(GPT_CONFIG_124M, include_output_head=True) == kaplan + 2 * vocab * d


def test_bytes_and_memory_of_a_model():
    assert [bytes_per_parameter(t) for t in ("float32", "bfloat16", "float16", "int8")] == [
        4,
        2,
        2,
        1,
    ]
    assert bytes_per_parameter(torch.float64) == 8
    with pytest.raises(ValueError, match="Unknown dtype"):
        bytes_per_parameter("float33")
    model = GPTModel(TINY).to(torch.bfloat16)
    assert model_memory(model, "bfloat16") == sum(
        p.numel() * p.element_size() for p in model.parameters()
    )


# --- shapes, errors, dropout --------------------------------------------------------------------


def test_shapes_on_a_tiny_config():
    model = GPTModel(TINY)
    for n_tokens in (1, 5, TINY["context_length"]):
        assert model(torch.zeros(2, n_tokens, dtype=torch.long)).shape == (2, n_tokens, 97)
    assert len(model.trf_blocks) == 2 and model.out_head.bias is None


def test_too_long_input_says_to_crop():
    model = GPTModel(TINY).eval()
    with pytest.raises(ValueError, match=r"9 tokens.*context_length is 8.*last 8 tokens"):
        model(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match=r"unsqueeze\(0\)"):
        model(torch.zeros(5, dtype=torch.long))
    # generation crops, so a prompt longer than the context is fine there
    out = generate_text_simple(model, torch.zeros(1, 12, dtype=torch.long), 3, context_size=8)
    assert out.shape == (1, 15) and out[:, :12].eq(0).all()


def test_dropout_only_in_training():
    torch.manual_seed(0)
    model = GPTModel({**TINY, "drop_rate": 0.5})
    ids = torch.randint(0, 97, (2, 6))
    model.eval()
    torch.testing.assert_close(model(ids), model(ids), atol=0, rtol=0)
    model.train()
    assert not torch.equal(model(ids), model(ids))


def test_config_errors_are_clear():
    cfg = dict(TINY)
    del cfg["context_length"]
    with pytest.raises(ValueError, match="missing 'context_length'") as err:
        GPTModel(cfg)
    assert all(key in str(err.value) for key in CONFIG_FIELDS)
    with pytest.raises(ValueError, match="divisible by n_heads"):
        GPTModel({**TINY, "emb_dim": 18})
    with pytest.raises(ValueError, match="positive integer"):
        parameter_breakdown({**TINY, "n_layers": 0})


def test_state_dict_names_are_the_books():
    # the book's own GPTModel loads it, both ways: tests/test_book_parity.py
    state = GPTModel(TINY).state_dict()
    assert "trf_blocks.1.att.mask" in state and "trf_blocks.0.ff.layers.0.weight" in state
    assert "trf_blocks.0.norm1.scale" in state and "final_norm.shift" in state
    assert list(state)[:2] == ["tok_emb.weight", "pos_emb.weight"]


def test_text_round_trip(gpt2):
    ids = text_to_token_ids("Hi<|endoftext|>there", gpt2)
    assert ids.shape == (1, 3) and ids[0, 1] == 50256
    assert token_ids_to_text(ids, gpt2) == "Hi<|endoftext|>there"
    assert token_ids_to_text([15496, 11], gpt2) == "Hello,"
