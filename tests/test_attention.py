"""helpers.attention: the book's numbers, the shared weights function, the explicit maths."""

import pytest
import torch
from torch import nn

from helpers.attention import (
    CausalAttention,
    MultiHeadAttention,
    MultiHeadAttentionWrapper,
    SelfAttention_v1,
    SelfAttention_v2,
    causal_attention_weights,
    causal_mask,
    simple_self_attention,
)

# "Your journey starts with one step", as 3-dimensional embeddings (the book's section 3.3)
INPUTS = torch.tensor(
    [
        [0.43, 0.15, 0.89],
        [0.55, 0.87, 0.66],
        [0.57, 0.85, 0.64],
        [0.22, 0.58, 0.33],
        [0.77, 0.25, 0.10],
        [0.05, 0.80, 0.55],
    ]
)
BATCH = torch.stack((INPUTS, INPUTS))


def close(actual, expected, atol=1e-4):
    return torch.allclose(actual, torch.tensor(expected), atol=atol)


def seeded(cls, seed, *args, **kwargs):
    torch.manual_seed(seed)
    return cls(*args, **kwargs)


# --- the book's numbers ------------------------------------------------------------------------


def test_simple_attention_book_numbers():
    query = INPUTS[1]  # "journey"
    assert close(INPUTS @ query, [0.9544, 1.4950, 1.4754, 0.8434, 0.7070, 1.0865])
    context, weights = simple_self_attention(INPUTS)
    assert close(weights[1], [0.1385, 0.2379, 0.2333, 0.1240, 0.1082, 0.1581])
    assert close(context[1], [0.4419, 0.6515, 0.5683])
    assert torch.allclose(weights.sum(dim=-1), torch.ones(6))


def test_self_attention_v1_v2_book_numbers():
    out = seeded(SelfAttention_v1, 123, 3, 2)(INPUTS)
    assert close(out[:2], [[0.2996, 0.8053], [0.3061, 0.8210]])
    out = seeded(SelfAttention_v2, 789, 3, 2)(INPUTS)
    assert close(out[:2], [[-0.0739, 0.0713], [-0.0748, 0.0703]])


def test_v1_with_v2_weights_gives_v2_output():
    v2 = seeded(SelfAttention_v2, 789, 3, 2)
    v1 = SelfAttention_v1(3, 2)
    with torch.no_grad():
        for name in ("W_query", "W_key", "W_value"):
            getattr(v1, name).copy_(getattr(v2, name).weight.T)  # Linear stores W transposed
    assert torch.allclose(v1(INPUTS), v2(INPUTS), atol=1e-6)


def test_causal_attention_book_numbers():
    out = seeded(CausalAttention, 123, 3, 2, 6, 0.0)(BATCH)
    assert out.shape == (2, 6, 2)
    assert close(out[0, 0], [-0.4519, 0.2216]) and close(out[0, -1], [-0.5299, -0.1081])
    torch.testing.assert_close(out[0], out[1])  # one batched product: rows may take other kernels


def test_wrapper_book_numbers():
    out = seeded(MultiHeadAttentionWrapper, 123, 3, 2, 6, 0.0, num_heads=2)(BATCH)
    assert out.shape == (2, 6, 4)
    assert close(out[0, 0], [-0.4519, 0.2216, 0.4772, 0.1063])
    # the first head is exactly the CausalAttention above (same seed, created first)
    assert close(out[0, -1, :2], [-0.5299, -0.1081])


def test_multi_head_attention_book_numbers():
    out = seeded(MultiHeadAttention, 123, 3, 2, 6, 0.0, num_heads=2)(BATCH)
    assert out.shape == (2, 6, 2)
    assert close(out[0, 0], [0.3190, 0.4858]) and close(out[0, -1], [0.2575, 0.4028])


# --- book-compatible layout ---------------------------------------------------------------------


def test_state_dict_layout_matches_the_book():
    mha = MultiHeadAttention(4, 4, 5, 0.1, num_heads=2)
    sd = mha.state_dict()
    assert list(sd) == [
        "mask",
        "W_query.weight",
        "W_key.weight",
        "W_value.weight",
        "out_proj.weight",
        "out_proj.bias",
    ]
    assert sd["mask"].dtype == torch.float32 and torch.equal(sd["mask"], causal_mask(5))
    assert (mha.d_out, mha.num_heads, mha.head_dim) == (4, 2, 2)
    assert "W_query.bias" in MultiHeadAttention(4, 4, 5, 0.1, 2, qkv_bias=True).state_dict()
    ca = CausalAttention(3, 2, 6, 0.0).state_dict()
    assert list(ca) == ["mask", "W_query.weight", "W_key.weight", "W_value.weight"]
    wrapper = MultiHeadAttentionWrapper(3, 2, 6, 0.0, num_heads=2).state_dict()
    assert "heads.1.W_value.weight" in wrapper and "heads.0.mask" in wrapper


def test_state_dict_round_trip_strict():
    a = seeded(MultiHeadAttention, 1, 4, 4, 5, 0.0, num_heads=2).eval()
    b = seeded(MultiHeadAttention, 2, 4, 4, 5, 0.0, num_heads=2).eval()
    b.load_state_dict(a.state_dict(), strict=True)
    x = torch.rand(1, 5, 4)
    assert torch.equal(a(x), b(x))
    # a state dict whose mask was saved as the book saves it (float 0/1) loads too
    sd = {k: v.clone() for k, v in a.state_dict().items()}
    sd["mask"] = torch.triu(torch.ones(5, 5), diagonal=1)
    b.load_state_dict(sd, strict=True)


def test_mask_is_triu_of_ones():
    assert torch.equal(causal_mask(3), torch.tensor([[0.0, 1, 1], [0, 0, 1], [0, 0, 0]]))


# --- helpful errors ----------------------------------------------------------------------------


def test_heads_must_divide_d_out():
    with pytest.raises(ValueError, match=r"d_out \(6\) must be divisible by num_heads \(4\)"):
        MultiHeadAttention(3, 6, 8, 0.0, num_heads=4)
    with pytest.raises(ValueError, match=r"\[1, 2, 3, 6\]"):
        MultiHeadAttention(3, 6, 8, 0.0, num_heads=4)


@pytest.mark.parametrize("cls", [CausalAttention, MultiHeadAttention])
def test_too_long_and_unbatched_inputs(cls):
    module = cls(3, 2, 4, 0.0, num_heads=2) if cls is MultiHeadAttention else cls(3, 2, 4, 0.0)
    with pytest.raises(ValueError, match="got 6 tokens, but its context_length is 4"):
        module(BATCH)
    with pytest.raises(ValueError, match=r"x\.unsqueeze\(0\)"):
        module(INPUTS[:4])
    assert module(BATCH[:, :3]).shape == (2, 3, 2)  # shorter than the context is fine


# --- the shared weights function ------------------------------------------------------------------


def test_causal_attention_weights_step_by_step():
    torch.manual_seed(0)
    q, k = torch.randn(2, 3, 5, 4), torch.randn(2, 3, 5, 4)
    weights = causal_attention_weights(q, k, causal_mask(8), nn.Dropout(0.0))
    assert weights.shape == (2, 3, 5, 5)
    above = torch.triu(torch.ones(5, 5, dtype=torch.bool), diagonal=1)
    assert (weights[..., above] == 0).all()  # no token looks ahead
    # each row: softmax of the scaled scores over the tokens up to and including itself
    scaled = q @ k.transpose(-2, -1) / 2.0  # sqrt(head_dim = 4)
    for row in range(5):
        expected = torch.softmax(scaled[..., row, : row + 1], dim=-1)
        assert torch.allclose(weights[..., row, : row + 1], expected, atol=1e-6)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 3, 5))


def test_dropout_on_the_weights_zeroes_about_p_and_rescales():
    torch.manual_seed(0)
    q, k = torch.randn(16, 2, 32, 4), torch.randn(16, 2, 32, 4)
    weights = causal_attention_weights(q, k, causal_mask(32), nn.Dropout(0.0))
    torch.manual_seed(1)
    dropped = causal_attention_weights(q, k, causal_mask(32), nn.Dropout(0.5).train())
    visible = weights > 0  # the causal part; masked weights stay 0 either way
    zeroed = (dropped[visible] == 0).float().mean().item()
    assert abs(zeroed - 0.5) < 0.03  # ~8,400 visible weights: the std of the share is ~0.005
    kept = dropped[visible] != 0
    assert torch.allclose(dropped[visible][kept], weights[visible][kept] / 0.5)  # rescaled


def test_no_nan_when_a_row_is_almost_all_masked():
    # the first query sees only itself: its row must be [1, 0, 0, ...], not NaN from 0 * -inf
    q = torch.full((1, 4, 2), 1e4)
    w = causal_attention_weights(q, q, causal_mask(4), nn.Dropout(0.0))
    assert torch.isfinite(w).all() and torch.equal(w[0, 0], torch.tensor([1.0, 0, 0, 0]))


def test_multi_head_attention_is_the_explicit_maths_head_by_head():
    mha = seeded(MultiHeadAttention, 7, 3, 4, 6, 0.0, num_heads=2).eval()
    out = mha(BATCH)
    x = BATCH
    heads = []
    for h in range(2):
        cols = slice(2 * h, 2 * h + 2)  # head h: its head_dim slice of each projection
        q, k, v = (layer(x)[..., cols] for layer in (mha.W_query, mha.W_key, mha.W_value))
        scores = (q @ k.transpose(1, 2)) / 2**0.5
        scores = scores.masked_fill(torch.triu(torch.ones(6, 6, dtype=torch.bool), 1), -torch.inf)
        heads.append(torch.softmax(scores, dim=-1) @ v)
    assert torch.allclose(out, mha.out_proj(torch.cat(heads, dim=-1)), atol=1e-6)


def test_split_and_merge_heads_are_inverse():
    mha = MultiHeadAttention(4, 6, 8, 0.0, num_heads=3)
    t = torch.randn(2, 5, 6)
    assert mha.split_heads(t).shape == (2, 3, 5, 2)
    assert torch.equal(mha.split_heads(t)[:, 1], t[..., 2:4])  # head 1: features 2 and 3
    assert torch.equal(mha.merge_heads(mha.split_heads(t)), t)


def test_wrapper_heads_are_causal_attention_outputs():
    wrapper = seeded(MultiHeadAttentionWrapper, 5, 3, 2, 6, 0.0, num_heads=3)
    out = wrapper(BATCH)
    for i, head in enumerate(wrapper.heads):
        assert torch.equal(out[..., 2 * i : 2 * i + 2], head(BATCH))


def test_teaching_classes_carry_no_engine_switches():
    # the KV cache, the fused kernel and the viewer's recording live in their own modules
    for cls in (CausalAttention, MultiHeadAttention):
        module = cls(4, 4, 8, 0.0, **({"num_heads": 2} if cls is MultiHeadAttention else {}))
        names = set(vars(module)) | set(vars(cls))
        assert not names & {"use_sdpa", "record_stages", "stages", "kv_cache", "use_cache"}
