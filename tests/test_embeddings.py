"""helpers.embeddings and the book's embedding numbers (phase 03)."""

import pytest
import torch

from helpers.embeddings import apply_rope, one_hot_lookup, sinusoidal_positions

BOOK_WEIGHTS = torch.tensor([
    [0.3374, -0.1778, -0.1690],
    [0.9178, 1.5810, 1.3010],
    [1.2753, -0.2010, -0.1606],
    [-0.4015, 0.9666, -1.1481],
    [-1.1589, 0.3255, -0.6315],
    [-2.8400, -0.7849, -1.4096],
])


def test_seeded_embedding_matches_the_book():
    torch.manual_seed(123)
    layer = torch.nn.Embedding(6, 3)
    assert torch.allclose(layer.weight, BOOK_WEIGHTS, atol=1e-4)
    assert torch.allclose(layer(torch.tensor([3])), torch.tensor([[-0.4015, 0.9666, -1.1481]]), atol=1e-4)


def test_one_hot_times_weight_is_the_lookup():
    torch.manual_seed(0)
    weight = torch.randn(50, 7)
    ids = torch.tensor([[2, 3, 5, 1], [0, 49, 49, 7]])
    assert torch.allclose(one_hot_lookup(weight, ids), torch.nn.functional.embedding(ids, weight))


def test_sinusoids_shape_and_first_rows():
    enc = sinusoidal_positions(16, 8)
    assert enc.shape == (16, 8)
    assert torch.allclose(enc[0], torch.tensor([0.0, 1.0] * 4))  # sin 0 = 0, cos 0 = 1
    assert torch.allclose(enc[1, :2], torch.tensor([torch.sin(torch.tensor(1.0)), torch.cos(torch.tensor(1.0))]))
    assert len({tuple(row.tolist()) for row in enc}) == 16  # every position distinct
    with pytest.raises(ValueError, match="even"):
        sinusoidal_positions(4, 5)


def test_rope_scores_depend_only_on_relative_position():
    torch.manual_seed(1)
    q, k = torch.randn(1, 16), torch.randn(1, 16)
    def score(a, b):
        return (apply_rope(q, torch.tensor([a])) @ apply_rope(k, torch.tensor([b])).T).item()
    assert score(0, 3) == pytest.approx(score(10, 13), abs=1e-5) == pytest.approx(score(500, 503), abs=1e-4)
    assert score(0, 3) != pytest.approx(score(0, 4), abs=1e-3)


def test_rope_is_a_rotation():
    x = torch.randn(2, 5, 8)
    rotated = apply_rope(x, torch.arange(5))
    assert torch.allclose(rotated.norm(dim=-1), x.norm(dim=-1), atol=1e-5)  # lengths unchanged
    assert torch.allclose(rotated[:, 0], x[:, 0])  # position 0: no rotation


def test_sinusoid_similarity_depends_only_on_distance_and_falls_off():
    """Notebook 03's figure and its printed numbers: position p is as alike to p + d as any
    other pair d apart, and nearer positions are more alike (over short distances)."""
    unit = torch.nn.functional.normalize(sinusoidal_positions(64, 64), dim=1)
    similarity = unit @ unit.T
    for d in (1, 2, 10, 30):
        along = torch.diagonal(similarity, offset=d)
        torch.testing.assert_close(along, torch.full_like(along, along[0].item()), atol=1e-5, rtol=0)
    first_row = similarity[0, :6]
    assert (first_row[1:] < first_row[:-1]).all()  # falls off over the first 5 positions...
    printed = similarity[10, [11, 12, 20, 40]]
    assert (printed[1:] < printed[:-1]).all()  # ...and, with ripples, over longer distances
    assert similarity[10, 11].item() == pytest.approx(0.966, abs=5e-4)


def test_unmasked_attention_is_blind_to_order_and_causal_attention_is_not():
    """Notebook 03, why positions: permuting the input of attention without a mask permutes its
    output; with the causal mask it does not."""
    from helpers.attention import (
        causal_attention_weights,
        causal_mask,
        simple_self_attention,
    )

    torch.manual_seed(0)
    x = torch.randn(5, 3)
    order = torch.tensor([4, 3, 2, 1, 0])
    context, _ = simple_self_attention(x)
    torch.testing.assert_close(simple_self_attention(x[order])[0], context[order])

    def causal(v):
        return causal_attention_weights(v, v, causal_mask(5), torch.nn.Identity()) @ v

    assert not torch.allclose(causal(x[order]), causal(x)[order], atol=1e-3)
