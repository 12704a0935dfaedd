"""helpers.concepts and helpers.model configs: the book's numbers for phase 00."""

import torch
from torch.utils.data import DataLoader

from helpers.concepts import (
    SimpleNet,
    ToyDataset,
    autograd_gradients,
    chain_rule_gradients,
    compute_accuracy,
    count_parameters,
    draw_computational_graph,
    local_derivatives,
    toy_classification_data,
)
from helpers.model import CONFIG_FIELDS, GPT2_SIZES, GPT_CONFIG_124M, gpt2_config


def test_autograd_gives_the_books_gradients():
    grads = autograd_gradients()
    assert round(grads.dL_dw, 4) == -0.0898
    assert round(grads.dL_db, 4) == -0.0817


def test_chain_rule_agrees_with_autograd():
    for params in [dict(), dict(x=2.0, y=0.0, w=-0.5, b=0.5), dict(x=-3.0, y=1.0, w=0.1, b=-2.0)]:
        auto, hand = autograd_gradients(**params), chain_rule_gradients(**params)
        assert abs(auto.dL_dw - hand.dL_dw) < 1e-6 and abs(auto.dL_db - hand.dL_db) < 1e-6
        assert abs(auto.loss - hand.loss) < 1e-6


def test_simple_net_parameter_counts_match_the_book():
    assert count_parameters(SimpleNet(50, 3)) == 2_213
    assert count_parameters(SimpleNet(2, 2)) == 752


def test_one_sgd_step_lowers_the_loss_and_moves_weights_by_lr_times_grad():
    torch.manual_seed(123)
    model = SimpleNet(2, 2)
    X, y = toy_classification_data()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    loss = torch.nn.functional.cross_entropy(model(X), y)
    loss.backward()
    before = model.layers[0].weight.detach().clone()
    grad = model.layers[0].weight.grad.clone()
    optimizer.step()
    assert torch.allclose(model.layers[0].weight, before - 0.5 * grad)
    with torch.no_grad():
        after = torch.nn.functional.cross_entropy(model(X), y)
    assert after < loss


def test_local_derivatives_multiply_to_the_gradients():
    for params in [{}, {"x": 2.0, "y": 0.0, "w": -0.5, "b": 0.5}]:
        d, grads = local_derivatives(**params), autograd_gradients(**params)
        assert abs(d["dL/da"] * d["da/dz"] * d["dz/dw"] - grads.dL_dw) < 1e-6
        assert abs(d["dL/da"] * d["da/dz"] * d["dz/db"] - grads.dL_db) < 1e-6


def test_graph_drawing_shows_the_local_derivatives_and_gradients():
    import matplotlib

    matplotlib.use("Agg")
    fig = draw_computational_graph()
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert "-0.0898" in texts and "-0.0817" in texts and "σ(z)" in texts
    # the edge labels the notebook's "by hand" cell computes: a(1-a) and -1/a at a = σ(2.42)
    assert "0.0750" in texts and "-1.0889" in texts and "x = 1.1" in texts


def test_toy_dataset_follows_the_dataset_contract():
    X, y = toy_classification_data()
    dataset = ToyDataset(X, y)
    assert len(dataset) == 5
    features, label = dataset[3]
    assert torch.equal(features, X[3]) and label.item() == 1
    batches = list(DataLoader(dataset, batch_size=2))
    assert [len(labels) for _, labels in batches] == [2, 2, 1]


class FixedPredictions(torch.nn.Module):
    """A 'model' whose logits pick the class stored in each example's first feature."""

    def forward(self, features):
        return torch.nn.functional.one_hot(features[:, 0].long(), 2).float()


def test_accuracy_counts_examples_not_batches():
    # 3 right in a batch of 4, then 0 right in a batch of 1: 3/5, not the batch mean (0.75 + 0) / 2
    predicted = torch.tensor([[1.0], [0.0], [1.0], [0.0], [1.0]])
    labels = torch.tensor([1, 0, 1, 1, 0])
    loader = DataLoader(ToyDataset(predicted, labels), batch_size=4)
    model = FixedPredictions().train()
    assert compute_accuracy(model, loader) == 3 / 5
    assert not model.training  # it evaluates: dropout would be off


def test_accuracy_of_a_trained_simple_net_on_the_toy_data():
    torch.manual_seed(123)
    model = SimpleNet(2, 2)
    X, y = toy_classification_data()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(20):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(X), y).backward()
        optimizer.step()
    assert compute_accuracy(model, DataLoader(ToyDataset(X, y), batch_size=2)) == 1.0


def test_gpt2_configs():
    assert GPT_CONFIG_124M == {
        "vocab_size": 50257, "context_length": 1024, "emb_dim": 768, "n_heads": 12,
        "n_layers": 12, "drop_rate": 0.1, "qkv_bias": False,
    }
    assert set(CONFIG_FIELDS) == set(GPT_CONFIG_124M)
    assert gpt2_config("medium")["emb_dim"] == 1024 and gpt2_config("xl")["n_layers"] == 48
    for size in GPT2_SIZES.values():
        assert size["emb_dim"] % size["n_heads"] == 0
