"""helpers.kv_cache: a cached forward over the teaching GPTModel's own modules."""

import pytest
import torch

from helpers.kv_cache import CachedGPT, KVCache, NextTokenLogits, cached_attention, supports_kv_cache
from helpers.model import GPTModel

TINY = {
    "vocab_size": 97,
    "context_length": 8,
    "emb_dim": 16,
    "n_heads": 4,
    "n_layers": 2,
    "drop_rate": 0.0,
    "qkv_bias": False,
}


def tiny_eval_model(seed=0, **changes):
    torch.manual_seed(seed)
    return GPTModel({**TINY, **changes}).eval()


@pytest.mark.parametrize("qkv_bias", [False, True])
def test_cached_forward_in_pieces_equals_one_full_forward(qkv_bias):
    # pieces of 3, 1, 2 and 2 tokens: the prefill (causal mask), several new tokens after a
    # cache (the mask's bottom rows), one new token (no mask), up to the context length
    model = tiny_eval_model(qkv_bias=qkv_bias)
    ids = torch.randint(0, TINY["vocab_size"], (3, TINY["context_length"]))
    cached = CachedGPT(model)
    with torch.no_grad():
        full = model(ids)
        pieces, start = [], 0
        for size in (3, 1, 2, 2):
            assert cached.length == start  # where the next piece's positions begin
            pieces.append(cached(ids[:, start : start + size]))
            start += size
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, rtol=1e-5, atol=1e-5)


def test_cached_positions_are_absolute():
    # the same token fed at position 5 via the cache must not get position 0's embedding
    model = tiny_eval_model()
    ids = torch.randint(0, TINY["vocab_size"], (1, 6))
    cached = CachedGPT(model)
    with torch.no_grad():
        cached(ids[:, :5])
        cached_last = cached(ids[:, 5:])[0, -1]
        alone = model(ids[:, 5:])[0, -1]  # the same token at position 0, without context
        full_last = model(ids)[0, -1]
    torch.testing.assert_close(cached_last, full_last, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(cached_last, alone, atol=1e-3)


def test_the_cache_shares_the_models_parameters_and_adds_nothing_to_it():
    model = tiny_eval_model()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    cached = CachedGPT(model)
    ids = torch.randint(0, TINY["vocab_size"], (2, 5))
    with torch.no_grad():
        before = cached(ids)[:, -1]
        cached.reset()
        model.out_head.weight.mul_(2)  # change the model: the cache sees it, no copy was made
        after = cached(ids)[:, -1]
    assert torch.allclose(after, 2 * before, atol=1e-5)
    assert model.state_dict().keys() == state.keys()
    assert cached.caches[0].keys.shape == (2, 4, 8, 4)  # (batch, heads, context, head_dim)
    cached.reset()
    assert cached.length == 0 and cached.caches == [None, None]


def test_overflow_and_batch_mismatch_say_what_to_do():
    cached = CachedGPT(tiny_eval_model())
    ctx = TINY["context_length"]
    with torch.no_grad():
        cached(torch.zeros((2, ctx), dtype=torch.long))  # full
        with pytest.raises(ValueError, match=r"holds 8 tokens.*reset\(\)"):
            cached(torch.zeros((2, 1), dtype=torch.long))
        cached.reset()
        cached(torch.zeros((2, 3), dtype=torch.long))
        with pytest.raises(ValueError, match=r"batch of 2.*batch of 1.*reset\(\)"):
            cached(torch.zeros((1, 1), dtype=torch.long))  # another batch
        with pytest.raises(ValueError, match=r"unsqueeze\(0\)"):
            cached(torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="GPTModel's layout"):
        CachedGPT(torch.nn.Linear(2, 2))


def test_kv_cache_appends_in_place():
    cache = KVCache(torch.empty(1, 2, 0, 3), capacity=4)
    k1, v1 = torch.ones(1, 2, 3, 3), 2 * torch.ones(1, 2, 3, 3)
    keys, values = cache.append(k1, v1)
    assert cache.length == 3 and torch.equal(keys, k1) and torch.equal(values, v1)
    keys, values = cache.append(3 * torch.ones(1, 2, 1, 3), 4 * torch.ones(1, 2, 1, 3))
    assert keys.shape == (1, 2, 4, 3) and keys[0, 0, :, 0].tolist() == [1, 1, 1, 3]
    assert keys.data_ptr() == cache.keys.data_ptr()  # a view of the one allocation


def test_cached_attention_equals_the_module_on_the_whole_sequence():
    torch.manual_seed(1)
    att = GPTModel(TINY).trf_blocks[0].att.eval()
    x = torch.randn(2, 6, 16)
    cache = KVCache(torch.empty(2, 4, 0, 4), capacity=8)
    with torch.no_grad():
        pieces = [cached_attention(att, x[:, :4], cache), cached_attention(att, x[:, 4:], cache)]
        torch.testing.assert_close(torch.cat(pieces, dim=1), att(x), rtol=1e-5, atol=1e-5)


def test_supports_kv_cache_only_for_the_gpt_layout():
    assert supports_kv_cache(tiny_eval_model())
    assert not supports_kv_cache(torch.nn.Sequential(torch.nn.Embedding(5, 4)))


def test_next_token_logits_recomputes_once_past_the_context():
    model = tiny_eval_model()
    ids = torch.randint(0, TINY["vocab_size"], (1, 11))
    with torch.no_grad(), NextTokenLogits(model, context_size=8) as next_logits:
        for n in range(3, 12):  # up to 8 tokens through the cache, then sliding windows
            expected = model(ids[:, max(0, n - 8) : n])[:, -1]
            torch.testing.assert_close(next_logits(ids[:, :n]), expected, rtol=1e-5, atol=1e-5)
        assert next_logits.cached.length == 0  # past the context: the stale cache was emptied
