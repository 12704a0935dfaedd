"""LoRA explorer: what a rank-r update costs, and how much of a matrix rank r can hold (07).

Pure functions do the work; the widget only wires sliders to them:

- ``lora_counts(rank)``                   per GPT-2 size: all parameters, LoRA's trainable ones, %
- ``lora_counts_html(rank)``              the same as an HTML table
- ``low_rank_approximation(W, rank)``     the best rank-r matrix (truncated SVD, Eckart-Young)
- ``energy_kept(W, rank)``                share of the squared singular values the top r hold
- ``cumulative_energy(W)``                ``energy_kept`` for every rank 0 .. full, from one SVD
- ``plot_low_rank(W, rank)``              W, its rank-r approximation and what is left
- ``plot_singular_values(W, rank)``       cumulative energy against rank, the chosen rank marked
- ``lora_explorer(weight, rank)``         the interactive version

There is no alpha slider: alpha only scales the update A·B by alpha / r, which changes neither
the parameter counts nor what rank r can hold (the best rank-r matrix is the best at any scale).

The counts come from ``helpers.lora.lora_parameter_count`` (r · (in + out) per adapted Linear
layer), for GPT-2 with query/key/value biases as OpenAI's weights have them.

    >>> lora_counts(16, num_classes=2)[0]["lora"]       # the book's spam classifier
    2666528
"""

from __future__ import annotations

import html
import numbers

import torch

from ..lora import lora_parameter_count
from ..model import GPT2_SIZES, GPT_CONFIG_124M, parameter_breakdown
from .architecture_explorer import format_count
from .attention_viewer import figure_html
from .panel import panel
from .token_viewer import MUTED_COLOR, TEXT_COLOR

_FONT = "font-family:sans-serif; font-size:13px"
_CELL = "padding:2px 12px 2px 0; text-align:left"
_NUM = "padding:2px 12px 2px 0; text-align:right; font-variant-numeric:tabular-nums"
MATRIX_CMAP = "RdBu_r"  # diverging: 0 is white, so the sign of each entry reads at a glance
# The output head options: label -> num_classes (None: the vocabulary, for text generation).
HEADS = {"vocabulary head (text)": None, "2-class head (spam classifier)": 2}


# --- counting --------------------------------------------------------------------------------


def lora_counts(rank: int, sizes: dict | None = None, num_classes: int | None = None) -> list:
    """One row per model size: ``{"model", "full", "lora", "percent"}``.

    ``full``: all parameters of the book's ``GPTModel`` for that size with qkv biases (output
    head separate from the token embedding; with ``num_classes``, a ``Linear(emb_dim,
    num_classes)`` head with bias, as in the book's classifier). ``lora``: trainable parameters
    with LoRA on every Linear layer at ``rank``; ``percent``: ``100 · lora / full``.
    ``sizes``: ``{name: config overrides}``, default ``GPT2_SIZES``.
    """
    rows = []
    for name, overrides in (GPT2_SIZES if sizes is None else sizes).items():
        cfg = {**GPT_CONFIG_124M, **overrides, "qkv_bias": True}
        breakdown = parameter_breakdown(cfg)
        full = breakdown.total
        if num_classes is not None:
            full += cfg["emb_dim"] * num_classes + num_classes - breakdown.output_head
        lora = lora_parameter_count(cfg, rank, num_classes=num_classes)
        rows.append({"model": name, "full": full, "lora": lora, "percent": 100 * lora / full})
    return rows


def lora_counts_html(rank: int, num_classes: int | None = None) -> str:
    """``lora_counts`` as an HTML table, headed by the rank."""
    head_text = "vocabulary head" if num_classes is None else f"{num_classes}-class head"
    header = (
        f'<div style="{_FONT}; color:{TEXT_COLOR}; margin-bottom:4px">rank r = <b>{rank}</b>: '
        f"A is in × {rank}, B is {rank} × out</div>"
    )
    th = "".join(
        f'<th style="{_NUM if i else _CELL}; border-bottom:1px solid #d1d5db">{h}</th>'
        for i, h in enumerate(("model", "all parameters", "LoRA trainable", "share"))
    )
    rows = "".join(
        f'<tr><td style="{_CELL}">{html.escape(r["model"])}</td>'
        f'<td style="{_NUM}">{r["full"]:,}</td>'
        f'<td style="{_NUM}"><b>{r["lora"]:,}</b> ({format_count(r["lora"])})</td>'
        f'<td style="{_NUM}">{r["percent"]:.2f}%</td></tr>'
        for r in lora_counts(rank, num_classes=num_classes)
    )
    note = (
        f'<div style="{_FONT}; color:{MUTED_COLOR}; margin-top:4px">LoRA on every Linear layer '
        f"(query, key, value, out_proj, both feed-forward layers, {head_text}): r · (in + out) "
        "parameters each; qkv biases included in the totals.</div>"
    )
    table = (
        f'<table style="{_FONT}; color:{TEXT_COLOR}; border-collapse:collapse">'
        f"<thead><tr>{th}</tr></thead><tbody>{rows}</tbody></table>"
    )
    return f'<div style="background:#ffffff; padding:6px 8px">{header}{table}{note}</div>'


# --- low-rank approximation ------------------------------------------------------------------


def _as_matrix(W) -> torch.Tensor:
    """Any 2-D tensor, parameter or array as a float64 CPU tensor (SVD wants the precision)."""
    matrix = torch.as_tensor(W.detach() if isinstance(W, torch.Tensor) else W)
    if matrix.dim() != 2:
        raise ValueError(f"Expected a 2-D weight matrix, got shape {tuple(matrix.shape)}.")
    return matrix.to(device="cpu", dtype=torch.float64)


def _check_rank(rank) -> int:
    if isinstance(rank, bool) or not isinstance(rank, numbers.Integral) or rank < 0:
        raise ValueError(f"rank must be a whole number >= 0, got {rank!r}.")
    return int(rank)


def singular_values(W) -> torch.Tensor:
    """The singular values of ``W``, largest first (float64)."""
    return torch.linalg.svdvals(_as_matrix(W))


def low_rank_approximation(W, rank: int) -> torch.Tensor:
    """The rank-``rank`` matrix closest to ``W`` (Frobenius norm): keep the ``rank`` largest
    singular values of the SVD, drop the rest. A rank at or above ``min(W.shape)`` gives ``W``
    back. Returns float64."""
    rank = _check_rank(rank)
    U, S, Vh = torch.linalg.svd(_as_matrix(W), full_matrices=False)
    return (U[:, :rank] * S[:rank]) @ Vh[:rank]


def energy_kept(W, rank: int) -> float:
    """Share of ``W``'s "energy" (sum of squared singular values = squared Frobenius norm) that
    the top ``rank`` singular values hold: 1 at full rank. By Eckart-Young,
    ``1 - energy_kept`` is the squared relative error of ``low_rank_approximation``."""
    energy = singular_values(W) ** 2
    total = energy.sum().item()
    return 1.0 if total == 0 else energy[: _check_rank(rank)].sum().item() / total


def cumulative_energy(W) -> torch.Tensor:
    """``energy_kept(W, r)`` for r = 0, 1, ..., min(W.shape), from one SVD (float64)."""
    energy = singular_values(W) ** 2
    cumulative = torch.cat([torch.zeros(1, dtype=energy.dtype), energy.cumsum(0)])
    return cumulative / (cumulative[-1] if cumulative[-1] > 0 else 1)


def example_weight(size: int = 64, decay: float = 8.0, seed: int = 0) -> torch.Tensor:
    """A seeded ``size × size`` matrix whose singular values decay like exp(-k / decay), so a
    low rank captures most of it. It is made up, a picture of what "low rank" means; whether a
    real weight update looks like this is for a measurement to say (notebook 07, section 5).

    The singular vectors come from smoothed random walks, orthonormalised: the leading ones are
    broad patterns, later ones finer detail, so the pictures show what a low rank keeps.
    """
    generator = torch.Generator().manual_seed(seed)

    def orthonormal_smooth() -> torch.Tensor:
        walks = torch.randn(size, size, generator=generator, dtype=torch.float64).cumsum(0)
        q, _ = torch.linalg.qr(walks)
        return q

    s = torch.exp(-torch.arange(size, dtype=torch.float64) / decay)
    return (orthonormal_smooth() * s) @ orthonormal_smooth().T


def _style_matrix_axes(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def plot_low_rank(W, rank: int, title: str | None = None):
    """``W``, its rank-``rank`` approximation and the difference, side by side on one colour
    scale, titled with the share of energy kept and the parameters each form needs."""
    import matplotlib.pyplot as plt

    matrix = _as_matrix(W)
    approx = low_rank_approximation(matrix, rank)
    rows, cols = matrix.shape
    limit = matrix.abs().max().item() or 1.0
    fig, axes = plt.subplots(1, 3, figsize=(11, 4.2), layout="constrained")
    panels = (
        (matrix, f"W\n{rows} × {cols} = {rows * cols:,} numbers"),
        (
            approx,
            f"rank-{rank} approximation\nas A·B: {rank} × ({rows} + {cols}) = "
            f"{rank * (rows + cols):,} numbers",
        ),
        (matrix - approx, f"difference\nwhat rank {rank} leaves out"),
    )
    for ax, (values, label) in zip(axes, panels, strict=True):
        image = ax.imshow(values.numpy(), cmap=MATRIX_CMAP, vmin=-limit, vmax=limit)
        ax.set_title(label, fontsize=10)
        _style_matrix_axes(ax)
    fig.colorbar(image, ax=axes, shrink=0.85)
    kept = energy_kept(matrix, rank)
    fig.suptitle(
        title or f"Rank {rank} keeps {100 * kept:.1f}% of the energy (squared singular values)",
        fontsize=12,
    )
    return fig


def plot_singular_values(W, rank: int | None = None):
    """Cumulative energy kept against rank (0 to full), with ``rank`` marked if given."""
    import matplotlib.pyplot as plt

    cumulative = cumulative_energy(W)
    ranks = range(len(cumulative))
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.plot(ranks, 100 * cumulative.numpy(), color="#2563eb", lw=2)
    if rank is not None:
        r = min(_check_rank(rank), len(cumulative) - 1)
        kept = 100 * cumulative[r].item()
        ax.axvline(r, color="#ef4444", lw=1, ls="--")
        ax.plot([r], [kept], "o", color="#ef4444")
        right_half = r > (len(cumulative) - 1) / 2  # label on the side with room
        ax.annotate(
            f"rank {r}: {kept:.1f}%",
            (r, kept),
            xytext=(-8 if right_half else 8, -16),
            textcoords="offset points",
            ha="right" if right_half else "left",
            color="#b91c1c",
            fontsize=10,
        )
    ax.set_xlim(0, len(cumulative) - 1)
    ax.set_ylim(0, 102)
    ax.set_xlabel("rank r (singular values kept)")
    ax.set_ylabel("energy kept (%)")
    ax.set_title("How much of the matrix the top r singular values hold", fontsize=11)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


# --- the widget ------------------------------------------------------------------------------


def explorer_summary(W, rank: int, num_classes: int | None = None) -> str:
    """``LoRA explorer: r=8: 1.7 M trainable in gpt2-small (1.06%); 86% of W's energy``:
    LoRA's trainable parameters in the smallest GPT-2, and ``energy_kept(W, rank)``."""
    row = lora_counts(rank, num_classes=num_classes)[0]
    model = row["model"].split(" ")[0]
    return (
        f"LoRA explorer: r={rank}: {format_count(row['lora'])} trainable "
        f"in {model} ({row['percent']:.2f}%); {energy_kept(W, rank):.0%} of W's energy"
    )


def lora_explorer(weight=None, rank: int = 8):
    """A rank slider over LoRA's parameter counts and a low-rank approximation.

    ``weight``: the matrix to approximate (e.g. a weight update ``W_after - W_before``);
    default ``example_weight()``; the rank slider stops at 64 or the matrix's full rank. The
    returned ``VBox`` has ``.rank`` (IntSlider), ``.head`` (ToggleButtons:
    vocabulary or 2-class output head, the keys of ``HEADS``), ``.table`` (HTML counts),
    ``.figure`` (HTML holding the two figures as PNGs), ``.weight`` and ``.update()``; its
    ``repr`` is one line (``explorer_summary``).
    """
    import ipywidgets as widgets

    matrix = example_weight() if weight is None else _as_matrix(weight)
    style = {"description_width": "50px"}
    layout = widgets.Layout(width="420px")
    max_rank = max(1, min(64, *matrix.shape))
    rank_slider = widgets.IntSlider(
        value=min(rank, max_rank),
        min=1,
        max=max_rank,
        description="rank r",
        continuous_update=False,
        style=style,
        layout=layout,
    )
    # Labels as values: a None value would read as "nothing selected" to ipywidgets.
    head = widgets.ToggleButtons(
        options=list(HEADS), value=next(iter(HEADS)), style={"button_width": "220px"}
    )
    table = widgets.HTML()
    figure = widgets.HTML()

    def update_table(change=None):
        num_classes = HEADS[head.value]
        table.value = lora_counts_html(rank_slider.value, num_classes)

    def update_figure(change=None):
        images = [
            figure_html(plot_low_rank(matrix, rank_slider.value)),
            figure_html(plot_singular_values(matrix, rank_slider.value)),
        ]
        figure.value = "<div>" + "<br>".join(images) + "</div>"

    def update(change=None):
        update_table()
        update_figure()

    rank_slider.observe(update, names="value")  # the rank changes both
    head.observe(update_table, names="value")
    update()

    box = panel(
        [rank_slider, head, table, figure],
        summary=lambda: explorer_summary(matrix, rank_slider.value, HEADS[head.value]),
        layout=widgets.Layout(width="100%"),
    )
    box.rank, box.head = rank_slider, head
    box.table, box.figure, box.weight, box.update = table, figure, matrix, update
    return box


if __name__ == "__main__":  # usage example: python -m helpers.widgets.lora_explorer
    import matplotlib

    matplotlib.use("Agg")
    for row in lora_counts(16, num_classes=2):
        print(f"{row['model']:<20}{row['full']:>15,}{row['lora']:>13,}{row['percent']:>8.2f}%")
    W = example_weight()
    print([round(energy_kept(W, r), 3) for r in (1, 4, 8, 16, 64)])
    plot_low_rank(W, 8).savefig("lora_low_rank.png", dpi=90)
