"""Phase 00, basic concepts: the autograd example, its hand-derived gradients, a small network.

The numbers follow the book's appendix A: a one-weight logistic regression (x=1.1, y=1.0,
w=2.2, b=0.0) whose gradients autograd gives as -0.0898 and -0.0817, and a three-layer
network with 30 and 20 hidden units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


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


def draw_computational_graph(grads: Gradients | None = None):
    """A picture of the graph x, w, b -> z -> a -> L, with gradients on the way back."""
    import matplotlib.pyplot as plt

    grads = grads or autograd_gradients()
    fig, ax = plt.subplots(figsize=(9, 3.2))
    # label: (centre x, centre y, half width) in data units, so arrows can stop at box edges
    nodes = {
        "x = 1.1": (0.5, 2.4, 0.45),
        "w = 2.2": (0.5, 1.4, 0.45),
        "b = 0.0": (0.5, 0.4, 0.45),
        "z = x·w + b": (3.0, 1.4, 0.75),
        "a = σ(z)": (5.3, 1.4, 0.55),
        "L = BCE(a, y)": (7.7, 1.4, 0.8),
    }
    for label, (cx, cy, _) in nodes.items():
        leaf = label[0] in "xwb"
        ax.text(cx, cy, label, ha="center", va="center", fontsize=11,
                bbox=dict(boxstyle="round,pad=0.4", fc="#e8f0fe" if leaf else "#fef3e0", ec="#555"))

    def arrow(src, dst):
        (x0, y0, w0), (x1, y1, w1) = nodes[src], nodes[dst]
        ax.annotate("", xy=(x1 - w1 - 0.1, y1), xytext=(x0 + w0 + 0.1, y0),
                    arrowprops=dict(arrowstyle="-|>", color="#333"))

    for leaf in ("x = 1.1", "w = 2.2", "b = 0.0"):
        arrow(leaf, "z = x·w + b")
    arrow("z = x·w + b", "a = σ(z)")
    arrow("a = σ(z)", "L = BCE(a, y)")
    ax.text(4.2, 0.25, f"backward: ∂L/∂w = {grads.dL_dw:.4f},  ∂L/∂b = {grads.dL_db:.4f}",
            ha="center", color="#b3261e", fontsize=11)
    ax.annotate("", xy=(1.6, 0.55), xytext=(7.2, 0.55),
                arrowprops=dict(arrowstyle="-|>", color="#b3261e", linestyle="--"))
    ax.text(4.2, 2.75, "forward", ha="center", color="#333", fontsize=11)
    ax.set_xlim(-0.4, 8.9)
    ax.set_ylim(0, 3.0)
    ax.axis("off")
    fig.tight_layout()
    return fig
