"""Architecture explorer: where a GPT's parameters, memory and compute go (notebook 05).

Pure functions do the work; the widget only wires sliders to them:

- ``architecture_summary(cfg, tied)``     parameter breakdown, memory per dtype, FLOPs per token
- ``architecture_html(cfg, tied)``        the same as an HTML table, or a message saying what to fix
- ``plot_parameter_breakdown(configs)``   stacked bars per model size (for readers on GitHub)
- ``architecture_explorer(cfg)``          sliders for the config, presets for the GPT-2 sizes

Everything is counted by formula (``helpers.model.parameter_breakdown``), so even GPT-2 xl
updates instantly: no model is built.

    >>> architecture_summary(GPT_CONFIG_124M, tied=False)["total"]
    163009536
"""

from __future__ import annotations

import html

from ..model import (
    CONFIG_FIELDS,
    GPT2_SIZES,
    GPT_CONFIG_124M,
    bytes_per_parameter,
    check_config,
    flops_per_token,
    gpt2_config,
    parameter_breakdown,
)
from .panel import panel
from .token_viewer import MUTED_COLOR, TEXT_COLOR

# One colour per component, the same in the table and the figure.
COMPONENT_COLORS = {
    "token embedding": "#60a5fa",
    "position embedding": "#a5b4fc",
    "attention": "#f59e0b",
    "feed-forward": "#ef4444",
    "layer norms": "#10b981",
    "final norm": "#047857",
    "output head": "#a855f7",
}
WEIGHT_DTYPES = ("float32", "bfloat16", "int8")
# AdamW in float32 keeps, per parameter: the weight, its gradient and two moment estimates.
ADAMW_BYTES_PER_PARAMETER = 4 + 4 + 4 + 4
CUSTOM = "custom"

_FONT = "font-family:sans-serif; font-size:13px"
_CELL = "padding:2px 10px 2px 0; text-align:left; vertical-align:middle"
_NUM = "padding:2px 10px 2px 0; text-align:right; font-variant-numeric:tabular-nums"


def preset_configs() -> dict[str, dict]:
    """``{"gpt2-small (124M)": cfg, ...}``: the four GPT-2 sizes as full configs."""
    return {name: gpt2_config(name) for name in GPT2_SIZES}


# --- numbers ---------------------------------------------------------------------------------


def architecture_summary(cfg: dict, tied: bool = True) -> dict:
    """What a GPT config costs, counted by formula.

    ``tied``: the output head shares the token embedding's matrix (as in OpenAI's GPT-2);
    ``False`` counts it separately (as the book's ``GPTModel`` builds it).

    Keys: ``config``, ``tied``, ``head_dim``, ``components`` (one dict per component:
    ``component``, ``copies``, ``per_block``, ``parameters``, ``share`` of ``total``, ``note``),
    ``total`` (for this ``tied``), ``total_untied``, ``total_tied``, ``memory`` (bytes of the
    weights per dtype in ``WEIGHT_DTYPES``), ``training_memory_adamw`` (bytes, weights +
    gradients + AdamW's two moments in float32, activations not included), ``flops_per_token``
    (Kaplan's forward estimate) and ``flops_per_token_with_head`` (plus the output layer).
    Raises ``ValueError`` (from ``check_config``) for an impossible config.
    """
    breakdown = parameter_breakdown(cfg)
    total = breakdown.total_tied if tied else breakdown.total
    components = []
    for c in breakdown:
        shared = tied and c.name == "output head"
        parameters = 0 if shared else c.count
        components.append(
            {
                "component": c.name,
                "copies": c.copies,
                "per_block": c.per_block,
                "parameters": parameters,
                "share": parameters / total,
                "note": "shares the token embedding's matrix" if shared else c.formula,
            }
        )
    return {
        "config": dict(cfg),
        "tied": tied,
        "head_dim": cfg["emb_dim"] // cfg["n_heads"],
        "components": components,
        "total": total,
        "total_untied": breakdown.total,
        "total_tied": breakdown.total_tied,
        "memory": {dtype: total * bytes_per_parameter(dtype) for dtype in WEIGHT_DTYPES},
        "training_memory_adamw": total * ADAMW_BYTES_PER_PARAMETER,
        "flops_per_token": flops_per_token(cfg),
        "flops_per_token_with_head": flops_per_token(cfg, include_output_head=True),
    }


def format_count(n: int) -> str:
    """163009536 -> '163.0 M'; 1637792000 -> '1.64 B'; small numbers with thousands separators."""
    if n >= 1e9:
        return f"{n / 1e9:.2f} B"
    if n >= 1e6:
        return f"{n / 1e6:.1f} M"
    return f"{n:,}"


def format_bytes(n: int) -> str:
    """Bytes as the book writes them: MB = 1024² bytes (621.83 MB), GB = 1024³ bytes."""
    if n >= 1024**3:
        return f"{n / 1024**3:.2f} GB"
    if n >= 1024**2:
        return f"{n / 1024**2:.2f} MB"
    return f"{n / 1024:.1f} KB"


def format_flops(n: int) -> str:
    """188931072 -> '0.19 GFLOPs'; under a billion also shows millions."""
    if n >= 1e12:
        return f"{n / 1e12:.2f} TFLOPs"
    if n >= 1e9:
        return f"{n / 1e9:.2f} GFLOPs"
    return f"{n / 1e6:.1f} MFLOPs"


# --- HTML ------------------------------------------------------------------------------------


def _message(text: str) -> str:
    return (
        f'<div style="{_FONT}; color:#92400e; background:#fffbeb; border:1px solid #fcd34d; '
        f'border-radius:6px; padding:8px 10px">{text}</div>'
    )


def _near_multiples(value: int, of: int) -> list[int]:
    below = value - value % of
    return [m for m in (below, below + of) if m >= 1]


def divisibility_message(emb_dim: int, n_heads: int, max_heads: int = 64) -> str:
    """The friendly explanation when ``emb_dim`` cannot be split into ``n_heads`` equal heads."""
    heads = [h for h in range(1, min(emb_dim, max_heads) + 1) if emb_dim % h == 0]
    dims = " or ".join(str(d) for d in _near_multiples(emb_dim, n_heads))
    return _message(
        f"<b>emb_dim = {emb_dim} cannot be split into {n_heads} heads</b>: multi-head attention "
        f"gives each head emb_dim / n_heads dimensions, and {emb_dim} / {n_heads} = "
        f"{emb_dim / n_heads:.2f} is not a whole number.<br>"
        f"Try emb_dim = {dims}, or n_heads in {{{', '.join(map(str, heads))}}}."
    )


def _share_bar(share: float, colour: str) -> str:
    width = max(0.0, min(1.0, share)) * 120
    return (
        f'<div style="width:120px; height:10px; background:#f3f4f6; border-radius:2px">'
        f'<div style="width:{width:.1f}px; height:10px; background:{colour}; '
        f'border-radius:2px"></div></div>'
    )


def architecture_html(cfg: dict, tied: bool = True) -> str:
    """``architecture_summary`` as HTML: the config, a breakdown table, memory and compute.

    An impossible config (emb_dim not divisible by n_heads, a missing key) gives a message
    saying what to change instead of an exception.
    """
    if all(k in cfg for k in ("emb_dim", "n_heads")) and cfg["n_heads"] >= 1:
        if cfg["emb_dim"] % cfg["n_heads"]:
            return divisibility_message(cfg["emb_dim"], cfg["n_heads"])
    try:
        check_config(cfg)
    except ValueError as err:
        return _message(html.escape(str(err)))
    s = architecture_summary(cfg, tied)

    settings = ", ".join(
        f"{key}={html.escape(str(cfg[key]))}" for key in CONFIG_FIELDS if key != "drop_rate"
    )
    head = (
        f'<div style="{_FONT}; color:{TEXT_COLOR}; margin-bottom:4px">'
        f"<code>{settings}</code> &middot; head size {s['head_dim']}</div>"
    )
    header_cells = ("component", "copies", "parameters", "share", "", "formula per copy")
    th = "".join(
        f'<th style="{_NUM if h in ("copies", "parameters", "share") else _CELL}; '
        f'border-bottom:1px solid #d1d5db">{h}</th>'
        for h in header_cells
    )
    rows = []
    for row in s["components"]:
        colour = COMPONENT_COLORS[row["component"]]
        swatch = (
            f'<span style="display:inline-block; width:10px; height:10px; background:{colour}; '
            f'border-radius:2px; margin-right:6px"></span>'
        )
        copies = f"× {row['copies']}" if row["copies"] > 1 else ""
        shared = row["parameters"] == 0 and row["component"] == "output head"
        count = "(shared)" if shared else f"{row['parameters']:,}"
        rows.append(
            f'<tr><td style="{_CELL}; white-space:nowrap">{swatch}{row["component"]}</td>'
            f'<td style="{_NUM}">{copies}</td>'
            f'<td style="{_NUM}">{count}</td>'
            f'<td style="{_NUM}">{100 * row["share"]:.1f}%</td>'
            f'<td style="{_CELL}">{_share_bar(row["share"], colour)}</td>'
            f'<td style="{_CELL}; color:{MUTED_COLOR}">{html.escape(row["note"])}</td></tr>'
        )
    tying = "output head tied to the token embedding" if tied else "separate output head"
    other = s["total_untied"] if tied else s["total_tied"]
    other_label = "separate output head" if tied else "tied output head"
    rows.append(
        f'<tr style="border-top:1px solid #d1d5db"><td style="{_CELL}"><b>total</b></td>'
        f'<td></td><td style="{_NUM}"><b>{s["total"]:,}</b></td>'
        f'<td style="{_NUM}">100%</td><td style="{_CELL}"><b>{format_count(s["total"])}</b></td>'
        f'<td style="{_CELL}; color:{MUTED_COLOR}">{tying}; with a {other_label}: '
        f"{other:,}</td></tr>"
    )
    table = (
        f'<table style="{_FONT}; color:{TEXT_COLOR}; border-collapse:collapse">'
        f"<thead><tr>{th}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )

    memory = " &middot; ".join(f"{dtype} {format_bytes(n)}" for dtype, n in s["memory"].items())
    facts = [
        ("weights in memory", memory),
        (
            "training with AdamW (float32)",
            f"≈ {format_bytes(s['training_memory_adamw'])}: 16 bytes per parameter (weight, "
            "gradient and Adam's two moments), before activations",
        ),
        (
            "compute per token (forward)",
            f"≈ {format_flops(s['flops_per_token'])} (Kaplan et al. 2020: 2 × non-embedding "
            f"parameters + 2 × n_layers × context_length × emb_dim); "
            f"{format_flops(s['flops_per_token_with_head'])} with the output layer; "
            "training ≈ 3× that",
        ),
    ]
    facts_html = "".join(
        f'<tr><td style="{_CELL}; color:{MUTED_COLOR}">{k}</td><td style="{_CELL}">{v}</td></tr>'
        for k, v in facts
    )
    footer = (
        f'<table style="{_FONT}; color:{TEXT_COLOR}; border-collapse:collapse; margin-top:8px">'
        f"{facts_html}</table>"
        f'<div style="{_FONT}; color:{MUTED_COLOR}; margin-top:4px">MB = 1024² bytes, GB = '
        "1024³ bytes, as in the book.</div>"
    )
    return f'<div style="background:#ffffff; padding:6px 8px">{head}{table}{footer}</div>'


# --- static figure ---------------------------------------------------------------------------


def plot_parameter_breakdown(configs: dict | None = None, tied: bool = True):
    """Stacked bars, one per config: parameters per component (left) and their shares (right).

    ``configs``: ``{name: cfg}``, default the four GPT-2 sizes. Shows how the embeddings'
    share shrinks as models grow deeper and wider. Returns the ``Figure``.
    """
    import matplotlib.pyplot as plt

    configs = preset_configs() if configs is None else dict(configs)
    names = list(configs)
    summaries = [architecture_summary(cfg, tied) for cfg in configs.values()]
    components = [row["component"] for row in summaries[0]["components"]]
    if tied:
        components.remove("output head")

    fig, (ax_count, ax_share) = plt.subplots(
        1, 2, figsize=(11, 0.55 * len(names) + 2.0), sharey=True
    )
    y = list(range(len(names)))
    left_count = [0.0] * len(names)
    left_share = [0.0] * len(names)
    for component in components:
        counts = [
            next(r["parameters"] for r in s["components"] if r["component"] == component) / 1e6
            for s in summaries
        ]
        shares = [100 * c * 1e6 / s["total"] for c, s in zip(counts, summaries, strict=True)]
        colour = COMPONENT_COLORS[component]
        ax_count.barh(y, counts, left=left_count, color=colour, label=component, height=0.6)
        ax_share.barh(y, shares, left=left_share, color=colour, height=0.6)
        left_count = [a + b for a, b in zip(left_count, counts, strict=True)]
        left_share = [a + b for a, b in zip(left_share, shares, strict=True)]
    for i, s in enumerate(summaries):
        ax_count.text(left_count[i], i, f"  {s['total'] / 1e6:,.1f} M", va="center", fontsize=9)
    ax_count.set_yticks(y)
    ax_count.set_yticklabels(names)
    ax_count.invert_yaxis()
    ax_count.set_xlim(0, max(left_count) * 1.18)
    ax_count.set_xlabel("parameters (millions)")
    ax_share.set_xlim(0, 100)
    ax_share.set_xlabel("share of the parameters (%)")
    for ax in (ax_count, ax_share):
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        ax.tick_params(axis="y", length=0)
    tying = "output head tied to the token embedding" if tied else "separate output head"
    fig.suptitle(f"Where the parameters are ({tying})", fontsize=11)
    fig.legend(
        loc="lower center", ncol=len(components), fontsize=8, frameon=False, handlelength=1.2
    )
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


# --- the widget ------------------------------------------------------------------------------


def explorer_summary(cfg: dict, tied: bool = True) -> str:
    """``Architecture explorer: 12 layers, 12 heads, emb_dim 768: 124.4 M parameters, tied``,
    or what is wrong with an impossible config."""
    try:
        total = architecture_summary(cfg, tied)["total"]
    except (ValueError, KeyError, TypeError, ZeroDivisionError):
        d, h = cfg.get("emb_dim"), cfg.get("n_heads")
        if isinstance(d, int) and isinstance(h, int) and h >= 1 and d % h:
            return f"Architecture explorer: emb_dim {d} is not divisible by n_heads {h}"
        return "Architecture explorer: this config cannot be built"
    return (
        f"Architecture explorer: {cfg['n_layers']} layers, {cfg['n_heads']} heads, "
        f"emb_dim {cfg['emb_dim']}: {format_count(total)} parameters, "
        f"{'tied' if tied else 'untied'}"
    )


def _matching_preset(values: dict, presets: dict) -> str:
    keys = ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers")
    for name, cfg in presets.items():
        if all(values[k] == cfg[k] for k in keys):
            return name
    return CUSTOM


def architecture_explorer(cfg: dict = GPT_CONFIG_124M, tied: bool = True):
    """Sliders for a GPT config over its parameter table, memory and compute.

    The preset menu sets the sliders to a GPT-2 size; moving a slider by hand switches it to
    "custom". The returned ``VBox`` has ``.layers``, ``.heads``, ``.emb_dim``,
    ``.context_length``, ``.vocab_size`` (IntSliders), ``.preset`` (Dropdown), ``.tied``
    (ToggleButtons), ``.output`` (HTML), ``.config()`` (the config shown) and ``.update()``;
    its ``repr`` is one line: the size of the config and its parameter count.
    """
    import ipywidgets as widgets

    presets = preset_configs()
    style = {"description_width": "110px"}
    layout = widgets.Layout(width="460px")

    def slider(description, value, low, high, step=1):
        return widgets.IntSlider(
            value=value,
            min=low,
            max=max(high, value),
            step=step,
            description=description,
            continuous_update=False,
            style=style,
            layout=layout,
        )

    layers = slider("n_layers", cfg["n_layers"], 1, 128)
    heads = slider("n_heads", cfg["n_heads"], 1, 128)
    emb_dim = slider("emb_dim", cfg["emb_dim"], 1, 12288)
    context_length = slider("context_length", cfg["context_length"], 1, 131072)
    vocab_size = slider("vocab_size", cfg["vocab_size"], 1, 262144)
    sliders = {
        "n_layers": layers,
        "n_heads": heads,
        "emb_dim": emb_dim,
        "context_length": context_length,
        "vocab_size": vocab_size,
    }
    preset = widgets.Dropdown(
        options=[*presets, CUSTOM],
        value=_matching_preset(cfg, presets),
        description="preset",
        style=style,
        layout=layout,
    )
    tie = widgets.ToggleButtons(
        options=[("tied output head (GPT-2)", True), ("separate output head (book)", False)],
        value=tied,
        style={"button_width": "200px"},
    )
    output = widgets.HTML()
    syncing = {"on": False}  # True while a preset moves the sliders: render once, at the end

    def config() -> dict:
        return {**cfg, **{key: s.value for key, s in sliders.items()}}

    def update(change=None):
        if not syncing["on"]:
            output.value = architecture_html(config(), tie.value)

    def on_slider(change):
        if syncing["on"]:
            return
        syncing["on"] = True
        preset.value = _matching_preset(config(), presets)
        syncing["on"] = False
        update()

    def on_preset(change):
        if syncing["on"]:
            return
        if preset.value != CUSTOM:
            syncing["on"] = True
            for key, s in sliders.items():
                s.max = max(s.max, presets[preset.value][key])
                s.value = presets[preset.value][key]
            syncing["on"] = False
        update()

    for s in sliders.values():
        s.observe(on_slider, names="value")
    preset.observe(on_preset, names="value")
    tie.observe(update, names="value")
    update()

    box = panel(
        [preset, *sliders.values(), tie, output],
        summary=lambda: explorer_summary(config(), tie.value),
        layout=widgets.Layout(width="100%"),
    )
    box.layers, box.heads, box.emb_dim = layers, heads, emb_dim
    box.context_length, box.vocab_size = context_length, vocab_size
    box.preset, box.tied, box.output = preset, tie, output
    box.config, box.update = config, update
    return box
