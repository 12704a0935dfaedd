"""helpers.attention: the book's numbers, the shared maths, recording, and the fused fast path."""

import pytest
import torch
from torch import nn

from helpers.attention import (
    STAGES,
    CausalAttention,
    MultiHeadAttention,
    MultiHeadAttentionWrapper,
    SelfAttention_v1,
    SelfAttention_v2,
    attention_modules,
    causal_attention_weights,
    causal_mask,
    recording_attention,
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


# --- the shared maths and its recorded stages -----------------------------------------------------


def test_stages_are_consistent():
    torch.manual_seed(0)
    q, k = torch.randn(2, 3, 5, 4), torch.randn(2, 3, 5, 4)
    stages = {}
    weights = causal_attention_weights(q, k, causal_mask(8), nn.Dropout(0.0), stages)
    assert tuple(stages) == STAGES
    assert all(t.shape == (2, 3, 5, 5) and not t.requires_grad for t in stages.values())
    assert torch.allclose(stages["scores"], q @ k.transpose(-2, -1))
    assert torch.allclose(stages["scaled"], stages["scores"] / 2.0)  # sqrt(head_dim = 4)
    above = torch.triu(torch.ones(5, 5, dtype=torch.bool), diagonal=1)
    assert torch.isneginf(stages["masked"][..., above]).all()
    assert torch.equal(stages["masked"][..., ~above], stages["scaled"][..., ~above])
    assert torch.equal(stages["weights"], torch.softmax(stages["masked"], dim=-1))
    assert torch.allclose(stages["weights"].sum(-1), torch.ones(2, 3, 5))
    assert (stages["weights"][..., above] == 0).all()
    assert torch.equal(stages["dropped"], weights)


def test_no_nan_when_a_row_is_almost_all_masked():
    # the first query sees only itself: its row must be [1, 0, 0, ...], not NaN from 0 * -inf
    q = torch.full((1, 4, 2), 1e4)
    w = causal_attention_weights(q, q, causal_mask(4), nn.Dropout(0.0))
    assert torch.isfinite(w).all() and torch.equal(w[0, 0], torch.tensor([1.0, 0, 0, 0]))


def test_recording_does_not_change_the_output_and_restores_flags():
    mha = seeded(MultiHeadAttention, 123, 3, 4, 6, 0.1, num_heads=2).eval()
    fast = mha(BATCH)
    with recording_attention(mha) as modules:
        assert modules == [mha] and mha.record_stages
        recorded = mha(BATCH)
    assert not mha.record_stages and "record_stages" not in mha.__dict__
    assert torch.allclose(recorded, fast, atol=1e-6)
    assert mha.stages["weights"].shape == (2, 2, 6, 6)
    assert torch.equal(mha.stages["dropped"], mha.stages["weights"])  # eval: no dropout

    mha.record_stages = True  # an explicit setting survives a recording block
    with recording_attention(mha):
        pass
    assert mha.__dict__["record_stages"] is True


def test_recording_restores_flags_after_an_error():
    ca = CausalAttention(3, 2, 4, 0.0)
    with pytest.raises(ValueError), recording_attention(ca):
        ca(BATCH)  # too long
    assert not ca.record_stages and ca.stages is None


def test_recording_finds_every_attention_module_in_order():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.att = MultiHeadAttention(4, 4, 8, 0.0, num_heads=2)
            self.ff = nn.Linear(4, 4)

        def forward(self, x):
            return x + self.ff(x + self.att(x))

    model = nn.Sequential(Block(), Block(), Block()).eval()
    x = torch.rand(1, 5, 4)
    with recording_attention(model) as modules:
        model(x)
    assert modules == [block.att for block in model]
    assert all(m.stages["masked"].shape == (1, 2, 5, 5) for m in modules)
    # layer 0 sees the raw input: its weights are what the explicit maths gives
    att = model[0].att
    q = att._split_heads(att.W_query(x))
    k = att._split_heads(att.W_key(x))
    assert torch.allclose(modules[0].stages["scores"], q @ k.transpose(-2, -1), atol=1e-6)

    wrapper = MultiHeadAttentionWrapper(3, 2, 6, 0.0, num_heads=3)
    assert attention_modules(wrapper) == list(wrapper.heads)
    with recording_attention(wrapper) as heads:
        wrapper(BATCH)
    assert [h.stages["weights"].shape for h in heads] == [(2, 6, 6)] * 3


def test_wrapper_heads_are_causal_attention_outputs():
    wrapper = seeded(MultiHeadAttentionWrapper, 5, 3, 2, 6, 0.0, num_heads=3)
    out = wrapper(BATCH)
    for i, head in enumerate(wrapper.heads):
        assert torch.equal(out[..., 2 * i : 2 * i + 2], head(BATCH))


# --- fused fast path (scaled_dot_product_attention) against the explicit maths -------------------


def both_paths(module, x):
    module.use_sdpa = True
    fast = module(x)
    module.use_sdpa = False
    explicit = module(x)
    module.use_sdpa = True
    return fast, explicit


@pytest.mark.parametrize("cls", [CausalAttention, MultiHeadAttention])
def test_fast_path_equals_explicit_without_dropout(cls):
    kwargs = {"num_heads": 4} if cls is MultiHeadAttention else {}
    torch.manual_seed(3)
    x = torch.randn(3, 7, 8)
    module = cls(8, 8, 10, 0.2, **kwargs).eval()  # eval mode: dropout is off
    fast, explicit = both_paths(module, x)
    assert torch.allclose(fast, explicit, atol=1e-6)
    module = cls(8, 8, 10, 0.0, **kwargs).train()  # training, but p = 0
    fast, explicit = both_paths(module, x)
    assert torch.allclose(fast, explicit, atol=1e-6)


def test_explicit_dropout_zeroes_about_p_of_the_weights():
    mha = seeded(MultiHeadAttention, 0, 8, 8, 32, 0.5, num_heads=2).train()
    with recording_attention(mha):
        mha(torch.randn(16, 32, 8))
    weights, dropped = mha.stages["weights"], mha.stages["dropped"]
    visible = weights > 0  # the causal part; masked weights stay 0 either way
    zeroed = (dropped[visible] == 0).float().mean().item()
    assert abs(zeroed - 0.5) < 0.03  # ~8,400 visible weights: the std of the share is ~0.005
    kept = dropped[visible] != 0
    assert torch.allclose(dropped[visible][kept], weights[visible][kept] / 0.5)  # rescaled


def test_fast_and_explicit_dropout_agree_in_distribution():
    # The fused kernel draws its own dropout masks, so single outputs cannot be compared.
    # What must agree: the expected output (dropout is unbiased, so both means approach the
    # eval output) and the spread it causes (same p, same 1/(1-p) rescaling). 4,000 copies
    # of one sequence in a batch give 4,000 independent masks in one forward pass.
    mha = seeded(MultiHeadAttention, 123, 3, 4, 6, 0.3, num_heads=2)
    x = INPUTS.expand(4000, 6, 3)
    expected = mha.eval()(x[:1])[0]
    mha.train()
    torch.manual_seed(0)
    fast, explicit = both_paths(mha, x)
    assert not torch.allclose(fast[0], expected, atol=1e-3)  # dropout really was active
    for out in (fast, explicit):
        assert torch.allclose(out.mean(0), expected, atol=0.02)
    ratio = fast.std(0) / explicit.std(0)
    assert ((ratio > 0.9) & (ratio < 1.1)).all()
