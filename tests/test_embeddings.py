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
