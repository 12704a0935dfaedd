"""Phase 00, basic concepts: the autograd example, its hand-derived gradients, a small network,
and the data pipeline every later notebook uses (a Dataset, a DataLoader, an accuracy).

The numbers follow the book's appendix A: a one-weight logistic regression (x=1.1, y=1.0,
w=2.2, b=0.0) whose gradients autograd gives as -0.0898 and -0.0817, a three-layer
network with 30 and 20 hidden units, and a toy dataset of five points in two classes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset


@dataclass
class Gradients:
    loss: float
    dL_dw: float
    dL_db: float

    def __repr__(self) -> str:
        return f"Gradients(loss={self.loss:.4f}, dL_dw={self.dL_dw:.4f}, dL_db={self.dL_db:.4f})"


def autograd_gradients(x=1.1, y=1.0, w=2.2, b=0.0) -> Gradients:
    """Forward pass z = x*w + b, a = sigmoid(z), L = BCE(a, y), then let autograd go backwards."""
    x_t, y_t = torch.tensor([x]), torch.tensor([y])
    w_t = torch.tensor([w], requires_grad=True)
    b_t = torch.tensor([b], requires_grad=True)
    a = torch.sigmoid(x_t * w_t + b_t)
    loss = F.binary_cross_entropy(a, y_t)
    loss.backward()
    return Gradients(loss.item(), w_t.grad.item(), b_t.grad.item())


def chain_rule_gradients(x=1.1, y=1.0, w=2.2, b=0.0) -> Gradients:
    """The same gradients by hand, one local derivative per step of the graph.

    dL/da = -y/a + (1-y)/(1-a),  da/dz = a(1-a),  dz/dw = x,  dz/db = 1.
    Multiplied out, dL/dz simplifies to a - y: the prediction error.
    """
    z = x * w + b
    a = 1 / (1 + math.exp(-z))
    loss = -(y * math.log(a) + (1 - y) * math.log(1 - a))
    dL_da = -y / a + (1 - y) / (1 - a)
    da_dz = a * (1 - a)
    dL_dz = dL_da * da_dz
    return Gradients(loss, dL_dz * x, dL_dz * 1.0)


class SimpleNet(nn.Module):
    """A multilayer perceptron: inputs -> 30 -> 20 -> outputs, ReLU in between (appendix A)."""

    def __init__(self, num_inputs: int, num_outputs: int):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(num_inputs, 30),
            nn.ReLU(),
            nn.Linear(30, 20),
            nn.ReLU(),
            nn.Linear(20, num_outputs),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)  # logits: the softmax is folded into the loss function


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def toy_classification_data() -> tuple[torch.Tensor, torch.Tensor]:
    """Appendix A's five points in 2-D: three of class 0 (left), two of class 1 (right)."""
    X = torch.tensor([[-1.2, 3.1], [-0.9, 2.9], [-0.5, 2.6], [2.3, -1.1], [2.7, -1.5]])
    y = torch.tensor([0, 0, 0, 1, 1])
    return X, y


class ToyDataset(Dataset):
    """A Dataset is two methods: how many examples there are, and the example at an index."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor):
        self.features = features
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return self.features[index], self.labels[index]


def compute_accuracy(model: nn.Module, dataloader) -> float:
    """Share of examples whose largest logit is the true class, counted over all batches."""
    model.eval()
    correct, total = 0, 0
    with torch.no_grad():
        for features, labels in dataloader:
            predictions = model(features).argmax(dim=1)  # dim=1: over the classes of each row
            correct += (predictions == labels).sum().item()
            total += len(labels)
    return correct / total


def local_derivatives(x=1.1, y=1.0, w=2.2, b=0.0) -> dict[str, float]:
    """The derivative of each node of the logistic-regression graph with respect to its input."""
    a = 1 / (1 + math.exp(-(x * w + b)))
    return {"dz/dw": x, "dz/db": 1.0, "da/dz": a * (1 - a), "dL/da": -y / a + (1 - y) / (1 - a)}


def draw_computational_graph(grads: Gradients | None = None):
    """The graph x, w, b -> z -> a -> L drawn by hand: each edge labelled with its local
    derivative, and the gradients that their product gives on the way back."""
    import matplotlib.pyplot as plt

    grads = grads or autograd_gradients()
    local = local_derivatives()
    fig, ax = plt.subplots(figsize=(9.5, 3.4))
    # label: (centre x, centre y, half width) in data units, so arrows can stop at box edges
    nodes = {
        "x = 1.1": (0.5, 2.4, 0.45),
        "w = 2.2": (0.5, 1.4, 0.45),
        "b = 0.0": (0.5, 0.4, 0.45),
        "z = x·w + b": (3.3, 1.4, 0.55),
        "a = σ(z)": (5.5, 1.4, 0.4),
        "L = BCE(a, y)": (7.9, 1.4, 0.62),
    }
    for label, (cx, cy, _) in nodes.items():
        leaf = label[0] in "xwb"
        ax.text(cx, cy, label, ha="center", va="center", fontsize=11,
                bbox={"boxstyle": "round,pad=0.4", "fc": "#e8f0fe" if leaf else "#fef3e0", "ec": "#555"})

    def arrow(src, dst, derivative="", dy=0.12, along=0.5, ha="center"):
        (x0, y0, w0), (x1, y1, w1) = nodes[src], nodes[dst]
        start, end = (x0 + w0 + 0.1, y0), (x1 - w1 - 0.1, y1)
        ax.annotate("", xy=end, xytext=start, arrowprops={"arrowstyle": "-|>", "color": "#333"})
        # the three arrows into z converge: their labels sit nearer the start, clear of the others
        at = (start[0] + along * (end[0] - start[0]), start[1] + along * (end[1] - start[1]) + dy)
        ax.text(*at, derivative, ha=ha, va="bottom" if dy > 0 else "top", fontsize=9.5,
                color="#1a4f8b")

    arrow("x = 1.1", "z = x·w + b")  # x is data, not a parameter: its gradient is not needed
    arrow("w = 2.2", "z = x·w + b", f"∂z/∂w = x = {local['dz/dw']:.1f}", along=0.3)
    arrow("b = 0.0", "z = x·w + b", f"∂z/∂b = {local['dz/db']:.0f}", dy=-0.1, along=0.5, ha="left")
    arrow("z = x·w + b", "a = σ(z)", f"∂a/∂z = a(1−a)\n= {local['da/dz']:.4f}")
    arrow("a = σ(z)", "L = BCE(a, y)", f"∂L/∂a = −1/a\n= {local['dL/da']:.4f}")
    ax.text(4.4, 0.1, f"backward, multiplying along each path: ∂L/∂w = {grads.dL_dw:.4f},  "
            f"∂L/∂b = {grads.dL_db:.4f}", ha="center", color="#b3261e", fontsize=11)
    ax.annotate("", xy=(1.6, 0.5), xytext=(7.2, 0.5),
                arrowprops={"arrowstyle": "-|>", "color": "#b3261e", "linestyle": "--"})
    ax.text(4.4, 2.75, "forward", ha="center", color="#333", fontsize=11)
    ax.set_xlim(-0.4, 8.9)
    ax.set_ylim(0, 3.0)
    ax.axis("off")
    fig.tight_layout()
    return fig
