"""A drawing of the GPT architecture, labelled with the sizes of a config (notebook 05)."""

from __future__ import annotations

EMBED, BLOCK, NORM, HEAD = "#e8f0fe", "#fef3e0", "#e6f4ea", "#f3e8fd"


def draw_gpt_architecture(cfg: dict):
    """The data flow of ``GPTModel(cfg)``, bottom (token ids) to top (logits).

    The transformer block is drawn once inside a frame marked "× n_layers"; its two shortcut
    connections run along its right side.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    d, vocab, ctx = cfg["emb_dim"], cfg["vocab_size"], cfg["context_length"]
    rows = [  # (label, colour), drawn from the bottom up
        (f"token ids  (batch, tokens ≤ {ctx:,})", "white"),
        (f"token embedding  {vocab:,} × {d}", EMBED),
        (f"+ positional embedding  {ctx:,} × {d}", EMBED),
        (f"dropout  p = {cfg['drop_rate']}", EMBED),
        ("LayerNorm 1", NORM),
        (f"masked multi-head attention  {cfg['n_heads']} heads × {d // cfg['n_heads']}", BLOCK),
        ("dropout", BLOCK),
        ("LayerNorm 2", NORM),
        (f"feed-forward  {d} → {4 * d} → {d}, GELU", BLOCK),
        ("dropout", BLOCK),
        ("final LayerNorm", NORM),
        (f"linear output head  {d} → {vocab:,}", HEAD),
        (f"logits  (batch, tokens, {vocab:,})", "white"),
    ]
    step, width, x0 = 0.62, 5.2, 0.0
    fig, ax = plt.subplots(figsize=(7.2, 8.4))
    centres = []
    for i, (label, colour) in enumerate(rows):
        y = i * step
        centres.append(y)
        ax.add_patch(FancyBboxPatch((x0, y - 0.2), width, 0.4, boxstyle="round,pad=0.02,rounding_size=0.08",
                                    fc=colour, ec="#555", lw=1))
        ax.text(x0 + width / 2, y, label, ha="center", va="center", fontsize=10)
        if i:
            ax.annotate("", xy=(x0 + width / 2, y - 0.2), xytext=(x0 + width / 2, centres[i - 1] + 0.2),
                        arrowprops=dict(arrowstyle="-|>", color="#333", lw=1))

    # the transformer block frame, rows 4..9
    cx = x0 + width / 2
    bottom, top = centres[4] - 0.45, centres[9] + 0.45
    ax.add_patch(FancyBboxPatch((x0 - 0.25, bottom), width + 1.0, top - bottom,
                                boxstyle="round,pad=0.02,rounding_size=0.15", fc="none", ec="#b06000", lw=1.6, ls="--"))
    ax.text(x0 - 0.45, (bottom + top) / 2, f"transformer block  × {cfg['n_layers']}",
            ha="center", va="center", fontsize=10, color="#b06000", rotation=90)
    # shortcut connections: the input of each half skips past it and is added back at ⊕
    for (start, end), right in (((4, 6), x0 + width + 0.3), ((7, 9), x0 + width + 0.6)):
        # the second branch leaves just above the first ⊕, so the two paths stay apart
        y_from = centres[start] - step / 2 + (0.1 if start == 7 else 0.0)
        y_to = centres[end] + step / 2
        ax.plot([cx, right, right], [y_from, y_from, y_to], color="#1a73e8", lw=1.3)
        ax.annotate("", xy=(cx + 0.13, y_to), xytext=(right, y_to),
                    arrowprops=dict(arrowstyle="-|>", color="#1a73e8", lw=1.3))
        ax.text(cx, y_to, "+", ha="center", va="center", fontsize=11, color="#1a73e8", fontweight="bold",
                bbox=dict(boxstyle="circle,pad=0.1", fc="white", ec="#1a73e8"))
    ax.text(x0 + width + 0.38, centres[5], "shortcut", fontsize=8, color="#1a73e8", ha="left", va="center", rotation=90)
    ax.set_xlim(-0.75, width + 0.95)
    ax.set_ylim(-0.4, centres[-1] + 0.4)
    ax.axis("off")
    ax.set_title(f"GPT: {cfg['n_layers']} blocks, {d}-dimensional, {cfg['n_heads']} heads", fontsize=11)
    fig.tight_layout()
    return fig
