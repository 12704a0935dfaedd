"""helpers.generate: temperature, top-k, top-p, seeded sampling, per-row end tokens."""

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers.kv_cache import CachedGPT
from helpers.generate import (
    PromptCroppedWarning,
    SplitLinear,
    apply_top_k,
    apply_top_p,
    decoding_kernels,
    filter_logits,
    generate,
    generated_tokens,
    next_token_distribution,
    next_token_logits,
    sample_next_token,
    sampling_distribution,
    softmax_with_temperature,
    top_p_mask,
)
from helpers.model import GELU, GPTModel, LayerNorm, generate_text_simple

# The book's toy example (chapter 5): a nine-word vocabulary and the next-token logits.
VOCAB = {
    "closer": 0,
    "every": 1,
    "effort": 2,
    "forward": 3,
    "inches": 4,
    "moves": 5,
    "pizza": 6,
    "toward": 7,
    "you": 8,
}
WORDS = list(VOCAB)
LOGITS = torch.tensor([4.51, 0.89, -1.90, 6.75, 1.63, -1.62, -1.89, 6.28, 1.79])

TINY_CFG = {
    "vocab_size": 50257,
    "context_length": 16,
    "emb_dim": 32,
    "n_heads": 4,
    "n_layers": 2,
    "drop_rate": 0.1,
    "qkv_bias": False,
}


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(123)
    return GPTModel(TINY_CFG).eval()


def kept(logits):
    """The ids that are still finite after filtering."""
    return torch.isfinite(logits).nonzero().flatten().tolist()


# --- the book's numbers -------------------------------------------------------------------------


def test_book_greedy_and_one_seeded_sample():
    assert WORDS[sample_next_token(LOGITS, temperature=0).item()] == "forward"
    assert WORDS[sample_next_token(LOGITS, temperature=None).item()] == "forward"
    torch.manual_seed(123)
    assert WORDS[sample_next_token(LOGITS, temperature=1.0).item()] == "forward"


def test_book_sampling_counts_over_1000_draws():
    torch.manual_seed(123)
    draws = [sample_next_token(LOGITS, temperature=1.0).item() for _ in range(1000)]
    counts = {word: draws.count(i) for word, i in VOCAB.items()}
    assert counts == {
        "closer": 73,
        "every": 0,
        "effort": 0,
        "forward": 582,
        "inches": 2,
        "moves": 0,
        "pizza": 0,
        "toward": 343,
        "you": 0,
    }


def test_book_top_k_3():
    top3 = apply_top_k(LOGITS, 3)
    inf = float("-inf")
    assert torch.equal(top3, torch.tensor([4.51, inf, inf, 6.75, inf, inf, inf, 6.28, inf]))
    expected = torch.tensor([0.0615, 0, 0, 0.5775, 0, 0, 0, 0.3610, 0])
    assert torch.allclose(torch.softmax(top3, dim=0), expected, atol=5e-5)
    assert torch.allclose(sampling_distribution(LOGITS, 1.0, top_k=3), expected, atol=5e-5)


def test_book_temperatures():
    t1, t01, t5 = (softmax_with_temperature(LOGITS, t) for t in (1, 0.1, 5))
    assert torch.allclose(t1, torch.softmax(LOGITS, dim=0))
    assert t01.argmax() == VOCAB["forward"] and t01[VOCAB["forward"]] > 0.99  # nearly one-hot
    assert t5.max() < 0.25 and t5.min() > 0.04  # flatter: every word gets a few percent
    assert torch.allclose(t5[VOCAB["forward"]], torch.tensor(0.2421), atol=5e-5)
    for probs in (t1, t01, t5):
        assert torch.allclose(probs.sum(), torch.tensor(1.0))
    greedy = softmax_with_temperature(LOGITS, 0)
    assert greedy.tolist() == [0, 0, 0, 1, 0, 0, 0, 0, 0]  # the limit T -> 0


# --- top-k --------------------------------------------------------------------------------------


def test_top_k_keeps_every_tie_at_the_kth_value():
    logits = torch.tensor([1.0, 3.0, 3.0, 2.0, 3.0])
    assert kept(apply_top_k(logits, 1)) == [1, 2, 4]  # three 3s tie for first place
    assert kept(apply_top_k(logits, 3)) == [1, 2, 4]
    assert kept(apply_top_k(logits, 4)) == [1, 2, 3, 4]
    assert torch.equal(apply_top_k(logits, 5), logits)
    assert torch.equal(apply_top_k(logits, 1000), logits)  # k beyond the vocabulary: no-op
    kept_values = apply_top_k(logits, 4)[torch.isfinite(apply_top_k(logits, 4))]
    assert kept_values.tolist() == [3.0, 3.0, 2.0, 3.0]  # survivors are unchanged


def test_top_k_works_row_by_row():
    batch = torch.tensor([[1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0]])
    out = apply_top_k(batch, 2)
    assert kept(out[0]) == [2, 3] and kept(out[1]) == [0, 1]


# --- top-p --------------------------------------------------------------------------------------


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    assert top_p_mask(probs, 0.8).tolist() == [True, True, False, False]
    assert top_p_mask(probs, 0.81).tolist() == [True, True, True, False]
    assert top_p_mask(probs, 0.5).tolist() == [True, False, False, False]
    assert top_p_mask(probs, 0.01).tolist() == [True, False, False, False]  # top token always
    assert top_p_mask(probs, 0.96).tolist() == [True, True, True, True]
    assert top_p_mask(probs, 1.0).all()
    shuffled = torch.tensor([0.05, 0.5, 0.15, 0.3])  # order in the vocabulary does not matter
    assert top_p_mask(shuffled, 0.8).tolist() == [False, True, False, True]


def test_top_p_float_rounding_and_ties():
    # in float32, 0.7 + 0.1 = 0.79999999: still counts as reaching p = 0.8
    probs = torch.tensor([0.7, 0.1, 0.1, 0.1])
    assert top_p_mask(probs, 0.8).tolist() == [True, True, False, False]  # tie: lower id first
    batch = torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.05, 0.15, 0.3, 0.5]])
    assert top_p_mask(batch, 0.81).tolist() == [[True, True, True, False], [False] + [True] * 3]


def test_apply_top_p_on_logits_matches_the_mask():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    assert kept(apply_top_p(probs.log(), 0.8)) == [0, 1]
    assert kept(apply_top_p(probs.log(), 0.81)) == [0, 1, 2]
    assert torch.equal(apply_top_p(probs.log(), 1.0), probs.log())


def test_filter_order_top_k_then_temperature_then_top_p():
    # top-p judges the probabilities *after* the temperature
    assert kept(filter_logits(LOGITS, 1.0, top_p=0.5)) == [VOCAB["forward"]]  # 57% >= 50%
    flat = filter_logits(LOGITS, 5.0, top_p=0.5)  # 24% + 22% + 15%
    assert kept(flat) == [VOCAB["closer"], VOCAB["forward"], VOCAB["toward"]]
    # top-k comes first: of the two left, forward has 24.2 / (24.2 + 22.0) = 52% >= 50%
    assert kept(filter_logits(LOGITS, 5.0, top_k=2, top_p=0.5)) == [VOCAB["forward"]]
    probs = sampling_distribution(LOGITS, 5.0, top_k=3)
    assert torch.allclose(probs.sum(), torch.tensor(1.0)) and (probs > 0).sum() == 3
    greedy = filter_logits(LOGITS, 0, top_k=2, top_p=0.1)
    assert kept(greedy) == [VOCAB["forward"]]


def test_sample_shapes():
    assert sample_next_token(LOGITS, 1.0).shape == (1,)
    batch = torch.stack([LOGITS, -LOGITS])
    assert sample_next_token(batch, 0).tolist() == [[3], [2]]
    assert sample_next_token(batch, 1.0, top_k=1).tolist() == [[3], [2]]
    assert sample_next_token(batch.unsqueeze(0), 0.5).shape == (1, 2, 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"temperature": -0.1}, "temperature must be >= 0"),
        ({"temperature": float("nan")}, "temperature must be >= 0"),
        ({"temperature": "hot"}, "temperature must be a number"),
        ({"top_k": 0}, "top_k must be an integer >= 1"),
        ({"top_k": 2.5}, "top_k must be an integer >= 1"),
        ({"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
        ({"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
    ],
)
def test_invalid_settings(tiny, kwargs, message):
    with pytest.raises(ValueError, match=message):
        sample_next_token(LOGITS, **{"temperature": 1.0, **kwargs})
    with pytest.raises(ValueError, match=message):
        generate(tiny, torch.tensor([[1, 2]]), 2, 16, **{"temperature": 1.0, **kwargs})


# --- generate with a real (tiny) GPTModel --------------------------------------------------------


def test_greedy_matches_generate_text_simple(tiny):
    idx = torch.tensor([[6109, 3626, 6100, 345], [464, 3290, 318, 257]])  # two prompts
    expected = generate_text_simple(tiny, idx, max_new_tokens=6, context_size=16)
    assert torch.equal(generate(tiny, idx, 6, 16), expected)
    assert torch.equal(generate(tiny, idx, 6, 16, temperature=None), expected)
    # top-k and top-p never remove the likeliest token, so greedy ignores them
    assert torch.equal(generate(tiny, idx, 6, 16, temperature=0, top_k=3, top_p=0.2), expected)
    assert torch.equal(generate(tiny, idx, 0, 16), idx)


def test_seeded_sampling_is_reproducible(tiny):
    idx = torch.tensor([[6109, 3626, 6100, 345]])
    runs = []
    for seed in (123, 123, 7):
        torch.manual_seed(seed)
        runs.append(generate(tiny, idx, 8, 16, temperature=1.4, top_k=25))
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])
    assert runs[0].shape == (1, 12) and torch.equal(runs[0][:, :4], idx)


def test_sampling_draws_like_the_plain_recipe(tiny):
    """Same random numbers as the notebook's step-by-step version: top-k on the logits,
    divide by the temperature, softmax, one multinomial draw per step."""
    idx = torch.tensor([[6109, 3626, 6100, 345]])
    torch.manual_seed(123)
    by_hand = idx
    with torch.no_grad():
        for _ in range(6):
            logits = tiny(by_hand[:, -16:])[:, -1, :]
            kth = torch.topk(logits, 25).values[:, -1:]
            logits = torch.where(logits < kth, torch.tensor(float("-inf")), logits)
            probs = torch.softmax(logits / 1.4, dim=-1)
            by_hand = torch.cat((by_hand, torch.multinomial(probs, 1)), dim=1)
    torch.manual_seed(123)
    assert torch.equal(generate(tiny, idx, 6, 16, temperature=1.4, top_k=25), by_hand)


def test_prompt_longer_than_the_context_is_cropped_once(tiny):
    idx = torch.arange(100, 140).unsqueeze(0)  # 40 tokens, the context is 16
    with pytest.warns(PromptCroppedWarning, match="40 tokens.*last 16") as record:
        out = generate(tiny, idx, 5, 16)
    assert len(record) == 1  # once per call, not once per step
    assert out.shape == (1, 21) and torch.equal(out[:, :16], idx[:, -16:])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a prompt that fits: no notice
        generate(tiny, idx[:, :16], 2, 16)


def test_prompt_errors(tiny):
    with pytest.raises(ValueError, match="prompt is empty"):
        generate(tiny, torch.zeros((1, 0), dtype=torch.long), 5, 16)
    with pytest.raises(ValueError, match="unsqueeze"):
        generate(tiny, torch.tensor([1, 2, 3]), 5, 16)
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(tiny, torch.tensor([[1, 2, 3]]), -1, 16)
    with pytest.raises(ValueError, match="prompt is empty"):
        next_token_logits(tiny, [], 16)


def test_training_mode_is_restored(tiny):
    tiny.train()
    tiny.trf_blocks[0].eval()  # e.g. a frozen part kept in eval mode on purpose
    try:
        generate(tiny, torch.tensor([[1, 2, 3]]), 2, 16, temperature=1.0)
        assert tiny.training and tiny.trf_blocks[1].training
        assert not tiny.trf_blocks[0].training and not tiny.trf_blocks[0].att.training
    finally:
        tiny.eval()


def test_next_token_distribution(tiny):
    ids = [6109, 3626, 6100, 345]
    with torch.no_grad():
        logits = tiny(torch.tensor([ids]))[0, -1]
    assert torch.allclose(next_token_logits(tiny, torch.tensor(ids), 16), logits)
    probs = next_token_distribution(tiny, ids, 16, temperature=1.0)
    assert torch.allclose(probs, torch.softmax(logits, dim=-1))
    assert (next_token_distribution(tiny, [ids], 16, 1.0, top_k=5) > 0).sum() == 5
    greedy = next_token_distribution(tiny, torch.tensor([ids]), 16, temperature=0)
    assert greedy.argmax() == logits.argmax() and greedy.max() == 1
    with pytest.raises(ValueError, match="one sequence"):
        next_token_logits(tiny, torch.tensor([ids, ids]), 16)


# --- end tokens, one row at a time ---------------------------------------------------------------

EOS = 9


class ScriptedModel(nn.Module):
    """A stand-in GPT: row r of the batch says ``script[r][step]`` next, with certainty.

    It also records whether it ran in training mode and with gradients.
    """

    def __init__(self, script, vocab_size=10, prompt_length=2):
        super().__init__()
        self.script, self.vocab_size, self.prompt_length = script, vocab_size, prompt_length
        self.weight = nn.Parameter(torch.zeros(1))  # so it has parameters, like a real model
        self.calls = []

    def forward(self, idx):
        step = idx.shape[1] - self.prompt_length
        self.calls.append((self.training, torch.is_grad_enabled()))
        logits = torch.full((idx.shape[0], idx.shape[1], self.vocab_size), -10.0)
        for row, tokens in enumerate(self.script):
            logits[row, -1, tokens[step]] = 10.0
        return logits


def test_each_row_stops_at_its_own_end_token():
    # row 0 says EOS at step 2 and would go on with 7, 8; row 1 never ends
    model = ScriptedModel([[5, 6, EOS, 7, 8, 1], [1, 2, 3, 4, 5, 6]])
    prompt = torch.tensor([[0, 0], [0, 0]])
    out = generate(model, prompt, max_new_tokens=5, context_size=8, eos_id=EOS)
    assert out[:, 2:].tolist() == [[5, 6, EOS, EOS, EOS], [1, 2, 3, 4, 5]]
    assert generated_tokens(out, 2, eos_id=EOS) == [[5, 6], [1, 2, 3, 4, 5]]
    assert generated_tokens(out, 2) == out[:, 2:].tolist()
    model.train()
    sampled = generate(model, prompt, 5, 8, temperature=1.0, eos_id=EOS)  # the script is certain
    assert torch.equal(sampled, out)
    assert model.training and all(call == (False, False) for call in model.calls)


def test_generation_ends_when_every_row_has_ended():
    model = ScriptedModel([[5, EOS, 1, 1, 1], [1, 2, EOS, 3, 3]])
    out = generate(model, torch.zeros((2, 2), dtype=torch.long), 5, 8, eos_id=EOS)
    assert out[:, 2:].tolist() == [[5, EOS, EOS], [1, 2, EOS]]  # stopped after 3 steps
    assert len(model.calls) == 3
    single = ScriptedModel([[4, EOS, 1]])
    out = generate(single, torch.zeros((1, 2), dtype=torch.long), 10, 8, eos_id=EOS)
    assert out.tolist() == [[0, 0, 4, EOS]]  # the end token is kept


def test_end_token_in_the_prompt_does_not_stop_a_row():
    model = ScriptedModel([[5, 6, 7]])
    out = generate(model, torch.tensor([[EOS, EOS]]), 3, 8, eos_id=EOS)
    assert out.tolist() == [[EOS, EOS, 5, 6, 7]]


# --- the KV cache: the same tokens, fewer computed ----------------------------------------------

CACHE_CFG = {**TINY_CFG, "vocab_size": 50, "drop_rate": 0.0}  # small vocab: tokens repeat


@pytest.fixture(scope="module")
def cache_model():
    torch.manual_seed(7)
    return GPTModel(CACHE_CFG).eval()


def both_ways(model, idx, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PromptCroppedWarning)
        cached = generate(model, idx, *args, **kwargs)  # use_cache=True is the default
        plain = generate(model, idx, *args, use_cache=False, **kwargs)
    return cached, plain


# prompt lengths: short, just below the context (16), at it, and beyond it (cropped);
# 12 new tokens carry every one of them past the context, where the window slides
@pytest.mark.parametrize("prompt_length", [1, 5, 15, 16, 21])
@pytest.mark.parametrize("context_size", [16, 9])
def test_cache_gives_the_same_greedy_tokens(cache_model, prompt_length, context_size):
    torch.manual_seed(prompt_length)
    idx = torch.randint(0, CACHE_CFG["vocab_size"], (3, prompt_length))
    cached, plain = both_ways(cache_model, idx, 12, context_size)
    assert cached.shape == plain.shape == (3, min(prompt_length, context_size) + 12)
    assert torch.equal(cached, plain)
    if context_size == CACHE_CFG["context_length"]:
        assert torch.equal(plain, generate_text_simple(cache_model, idx[:, -16:], 12, 16))


@pytest.mark.parametrize("prompt_length", [3, 15])
def test_cache_gives_the_same_tokens_with_end_tokens(cache_model, prompt_length):
    torch.manual_seed(1)
    idx = torch.randint(0, CACHE_CFG["vocab_size"], (4, prompt_length))
    free = generate(cache_model, idx, 10, 16, use_cache=False)
    eos = free[0, prompt_length + 3].item()  # row 0 says this at step 4: make it the end token
    cached, plain = both_ways(cache_model, idx, 10, 16, eos_id=eos)
    assert torch.equal(cached, plain)
    assert (cached[0, prompt_length + 3 :] == eos).all()  # row 0 did end, and is padded


def test_cache_feeds_only_new_tokens_until_the_window_slides(cache_model, monkeypatch):
    seen = []  # (tokens fed, through the cache?) of every step
    caches = []
    real_call = CachedGPT.__call__

    def cached_call(self, new_ids):
        caches.append(self)
        seen.append((new_ids.shape[1], True))
        return real_call(self, new_ids)

    monkeypatch.setattr(CachedGPT, "__call__", cached_call)
    hook = cache_model.register_forward_pre_hook(
        lambda module, args: seen.append((args[0].shape[1], False))
    )
    try:
        out = generate(cache_model, torch.zeros((2, 13), dtype=torch.long), 6, 16)
    finally:
        hook.remove()
    # the prompt (13), then one token per step while the text fits the context (14, 15, 16
    # tokens), then the whole window of 16 at each step
    assert seen == [(13, True), (1, True), (1, True), (1, True), (16, False), (16, False)]
    assert out.shape == (2, 19)
    assert caches[0].length == 0 and caches[0].caches == [None, None]  # emptied when done


def test_cache_is_emptied_even_when_generation_fails(cache_model, monkeypatch):
    made = []
    real_init = CachedGPT.__init__
    monkeypatch.setattr(CachedGPT, "__init__", lambda self, m: (made.append(self), real_init(self, m))[1])
    with pytest.raises(ValueError, match="context length of 16"):
        generate(cache_model, torch.zeros((1, 20), dtype=torch.long), 3, 20)  # context 16
    assert made[0].length == 0 and made[0].caches == [None, None]
    assert all("forward" not in vars(m) for m in cache_model.modules())  # kernels put back


# --- decoding kernels: the same maths, fewer and core-parallel operations ------------------------


@pytest.mark.parametrize("out_features", [96, 97, 1])  # even split, a remainder, fewer than blocks
@pytest.mark.parametrize("rows", [1, 3, 16])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("blocks", [2, 3])
def test_split_linear_equals_f_linear(out_features, rows, bias, blocks):
    torch.manual_seed(rows)
    weight = torch.randn(out_features, 40)
    b = torch.randn(out_features) if bias else None
    x = torch.randn(1, rows, 40)
    with torch.no_grad():
        y = SplitLinear(weight, b, blocks)(x)
    assert y.shape == (1, rows, out_features)
    torch.testing.assert_close(y, F.linear(x, weight, b))


def test_split_linear_leaves_thick_inputs_and_gradients_to_f_linear():
    torch.manual_seed(0)
    weight = torch.randn(64, 32, requires_grad=True)
    split = SplitLinear(weight, None, 2)
    thick = torch.randn(17, 32)  # more than SPLIT_MAX_ROWS rows
    with torch.no_grad():
        assert torch.equal(split(thick), F.linear(thick, weight))
    y = split(torch.randn(1, 32))  # gradients wanted: the usual path, which autograd knows
    y.sum().backward()
    assert weight.grad is not None and weight.grad.abs().sum() > 0


def test_split_linear_needs_a_contiguous_matrix():
    with pytest.raises(ValueError, match="contiguous"):
        SplitLinear(torch.randn(32, 64).T)


WIDE_CFG = {**TINY_CFG, "vocab_size": 300, "emb_dim": 256, "n_heads": 4, "drop_rate": 0.0}


@pytest.fixture(scope="module")
def wide_model():
    """Every nn.Linear of this model is large enough to be split."""
    torch.manual_seed(3)
    return GPTModel(WIDE_CFG).eval()


def test_decoding_kernels_swap_every_layer_and_put_them_back(wide_model):
    idx = torch.randint(0, WIDE_CFG["vocab_size"], (2, 5))
    with torch.no_grad():
        before = wide_model(idx)
        with decoding_kernels(wide_model, blocks=2):
            swapped = [name for name, m in wide_model.named_modules() if "forward" in vars(m)]
            during = wide_model(idx)
    kinds = {type(m) for m in wide_model.modules() if isinstance(m, (nn.Linear, LayerNorm, GELU))}
    assert kinds == {nn.Linear, LayerNorm, GELU}
    assert len(swapped) == sum(1 for m in wide_model.modules() if type(m) in kinds)
    assert not any("forward" in vars(m) for m in wide_model.modules())  # all back
    torch.testing.assert_close(during, before, rtol=1e-4, atol=1e-4)


def test_decoding_kernels_restore_after_an_error(wide_model):
    with pytest.raises(RuntimeError, match="boom"), decoding_kernels(wide_model, blocks=2):
        raise RuntimeError("boom")
    assert not any("forward" in vars(m) for m in wide_model.modules())


def test_decoding_kernels_leave_subclasses_replacements_and_one_thread_alone():
    class ScaledLinear(nn.Linear):  # a subclass may compute something else: not touched
        def forward(self, x):
            return 2 * super().forward(x)

    mine = nn.Linear(512, 512)
    mine.forward = lambda x: x  # someone else's replacement: not touched, and kept after
    model = nn.Sequential(ScaledLinear(512, 512), mine, nn.Linear(512, 512), LayerNorm(512))
    with decoding_kernels(model, blocks=2):
        assert [("forward" in vars(m)) for m in model] == [False, True, True, True]
        assert isinstance(model[2].forward, SplitLinear)
    assert model[1].forward("x") == "x" and "forward" not in vars(model[2])
    with decoding_kernels(model, blocks=1):  # one block: nothing to split
        assert [("forward" in vars(m)) for m in model] == [False, True, False, True]


@pytest.mark.parametrize("batch", [1, 3])
def test_cached_greedy_tokens_with_split_layers_equal_the_plain_loop(wide_model, batch):
    torch.manual_seed(batch)
    idx = torch.randint(0, WIDE_CFG["vocab_size"], (batch, 4))
    seen = []
    hook = wide_model.trf_blocks[0].att.W_query.register_forward_hook(
        lambda module, args, out: seen.append(type(module.forward).__name__)
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # generate splits into one block per thread: at least two here
    try:
        cached = generate(wide_model, idx, 10, 16)
    finally:
        torch.set_num_threads(threads)
        hook.remove()
    assert "SplitLinear" in seen  # the fast path did run
    assert torch.equal(cached, generate_text_simple(wide_model, idx, 10, 16))
