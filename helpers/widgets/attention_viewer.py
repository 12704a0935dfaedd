"""Attention viewer: where each token looks, stage by stage and head by head (notebooks 04, 06).

Pure functions do the work; the widget only wires a text box and sliders to them:

- ``attention_stages(model, inputs)``       run the model once, return every attention
                                            module's stages (scores -> ... -> dropout)
- ``token_labels(ids, tokenizer)``          short, drawable axis labels, one per token
- ``plot_attention_stages(stages, tokens)`` one head's five stages side by side
- ``plot_attention_heads(stages, tokens)``  every head's softmax weights of one layer
- ``attention_viewer(model, tokenizer)``    the interactive version

The matrices come from the model's own forward pass (``recording_attention``): forward hooks,
nothing switched on inside the attention classes. The weights before and after dropout are
what the module's ``dropout`` layer received and returned; the scores, scaled and masked
stages are recomputed from the module's own query and key projections of the same input,
so the viewer shows what the model computes.

The viewer scales the scores by 1/√head_dim, then masks them; the book masks first, then
scales. The weights are the same: a masked −∞ divided by √head_dim is still −∞, and every
other score is divided either way.

    >>> stages = attention_stages(gpt, tokenizer.encode("Your journey starts"))
    >>> stages[0]["weights"].shape          # layer 0: (num_heads, num_tokens, num_tokens)
    torch.Size([12, 3, 3])
"""

from __future__ import annotations

import base64
import html
import io
import math
from contextlib import contextmanager

import torch
from torch import nn

from ..attention import STAGES
from ..fused_attention import fused_attention
from ..runtime import model_device
from .panel import panel, plural
from .token_viewer import (
    MUTED_COLOR,
    TEXT_COLOR,
    WHITESPACE_MARKS,
    encode,
    font_has_glyphs,
)

SCORE_CMAP = "RdBu_r"  # scores can be negative: diverging, white at 0
WEIGHT_CMAP = "Blues"  # weights are in [0, 1]: white at 0
MASKED_COLOR = "#c8cdd3"  # cells set to -inf (the future)
DROPPED_COLOR = "#dc2626"  # frame of a weight that dropout set to zero
MAX_LABEL_CHARS = 10
MAX_ANNOTATED_TOKENS = 8  # beyond this, numbers in the cells become unreadable


# --- running the model ---------------------------------------------------------------------


def _as_batch(inputs) -> torch.Tensor:
    """Token ids (list, (n,) or (1, n)) or embeddings ((n, d) or (1, n, d)) as a batch of one."""
    x = inputs if isinstance(inputs, torch.Tensor) else torch.tensor(inputs)
    if x.is_floating_point():
        return x.unsqueeze(0) if x.dim() == 2 else x
    return x.long().unsqueeze(0) if x.dim() == 1 else x.long()


@contextmanager
def _mode(model: nn.Module, train: bool, seed: int):
    """Temporarily ``model.train(train)``; in training mode, seed dropout without touching
    the global random state (so showing a figure does not change a later training run)."""
    was_training = model.training
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            model.train(train)
            yield
    finally:
        model.train(was_training)


# What an attention module needs for its stages to be recorded: the book's attribute names.
_ATTENTION_PARTS = ("W_query", "W_key", "W_value", "mask", "dropout")


def attention_modules(model: nn.Module) -> list[nn.Module]:
    """Every attention module inside ``model`` (itself included), in ``model.modules()`` order
    (for a GPT: layer 0, 1, ...): those with query/key/value projections, a mask and dropout."""
    return [m for m in model.modules() if all(hasattr(m, part) for part in _ATTENTION_PARTS)]


def _stages_before_softmax(module: nn.Module, x: torch.Tensor) -> dict:
    """Scores, scaled and masked scores, recomputed from ``module``'s projections of ``x``."""
    queries, keys = module.W_query(x), module.W_key(x)
    if hasattr(module, "num_heads"):  # (b, n, d_out) -> (b, num_heads, n, head_dim)
        b, n, _ = x.shape
        queries = queries.view(b, n, module.num_heads, -1).transpose(1, 2)
        keys = keys.view(b, n, module.num_heads, -1).transpose(1, 2)
    scores = queries @ keys.transpose(-2, -1)
    scaled = scores / keys.shape[-1] ** 0.5
    n = x.shape[1]
    masked = scaled.masked_fill(module.mask.bool()[:n, :n], -torch.inf)
    return {"scores": scores, "scaled": scaled, "masked": masked}


@contextmanager
def recording_attention(model: nn.Module):
    """Within the block, every forward of an attention module in ``model`` is recorded.

    Yields a dict, filled in forward order: module -> its stages (``STAGES``, detached) from
    the last forward. Hooks only: the modules' code and settings stay as they are; modules
    switched to the fused kernel (``helpers.fused_attention``) compute explicitly inside.

        with recording_attention(gpt) as recorded:
            gpt(token_ids)
        weights = list(recorded.values())[0]["weights"]   # layer 0: (b, num_heads, n, n)
    """
    recorded: dict[nn.Module, dict] = {}
    handles = []
    for module in attention_modules(model):

        def on_dropout(dropout, args, output, module=module):
            recorded[module] = {"weights": args[0].detach(), "dropped": output.detach()}

        def on_attention(module, args, output):
            with torch.no_grad():
                stages = _stages_before_softmax(module, args[0])
            recorded[module] = {**stages, **recorded.pop(module, {})}

        handles.append(module.dropout.register_forward_hook(on_dropout))
        handles.append(module.register_forward_hook(on_attention))
    restore_fused = fused_attention(model, enabled=False)
    try:
        yield recorded
    finally:
        restore_fused()
        for handle in handles:
            handle.remove()


def _per_head(t: torch.Tensor) -> torch.Tensor:
    """First sequence of a recorded stage, as (num_heads, n, n): one head for CausalAttention."""
    t = t[0]
    return (t.unsqueeze(0) if t.dim() == 2 else t).float().cpu()


def attention_stages(
    model: nn.Module,
    inputs,
    forward=None,
    train: bool = False,
    seed: int = 123,
) -> list[dict]:
    """Run ``model`` once on ``inputs`` and return what each attention module computed.

    ``inputs``: token ids for a GPT-style model (list, (n,) or (1, n) tensor), or embeddings
    for a bare attention module ((n, d_in) or (1, n, d_in)). ``forward``: what to call
    instead of ``model(x)``, for models whose forward takes other arguments.
    ``train=True`` runs in training mode, so the "dropped" stage shows dropout (seeded).

    Returns one dict per attention module, in forward order (for a GPT: one per layer):
    ``layer`` (its index), ``name`` (e.g. ``"trf_blocks.0.att"``), ``dropout_p``, ``train``,
    and the tensors of ``helpers.attention.STAGES`` for the first sequence, each
    (num_heads, n, n).
    """
    x = _as_batch(inputs)
    device = model_device(model)
    names = {module: name for name, module in model.named_modules()}
    with _mode(model, train, seed), torch.no_grad(), recording_attention(model) as recorded:
        (forward or model)(x.to(device))
    return [
        {
            "layer": index,
            "name": names[m] or type(m).__name__,
            "dropout_p": float(m.dropout.p),
            "train": train,
            **{stage: _per_head(stages[stage]) for stage in STAGES},
        }
        for index, (m, stages) in enumerate(recorded.items())
        if set(STAGES) <= set(stages)  # skip a module whose forward stopped half-way
    ]


def context_length(model: nn.Module) -> int:
    """The longest input ``model`` takes: its position embeddings, else its attention masks."""
    pos_emb = getattr(model, "pos_emb", None)
    if isinstance(pos_emb, nn.Embedding):
        return pos_emb.weight.shape[0]
    masks = [m.mask.shape[0] for m in attention_modules(model)]
    if not masks:
        raise ValueError("context_length: the model has no pos_emb and no attention mask.")
    return min(masks)


# --- token labels --------------------------------------------------------------------------


def _token_text(token_id: int, tokenizer) -> str:
    if hasattr(tokenizer, "decode_single_token_bytes"):  # tiktoken, BPETokenizer
        return tokenizer.decode_single_token_bytes(token_id).decode("utf-8", "replace")
    if hasattr(tokenizer, "int_to_str"):  # SimpleTokenizerV1/V2
        return str(tokenizer.int_to_str[token_id])
    return tokenizer.decode([token_id])


def token_labels(token_ids, tokenizer) -> list[str]:
    """One short label per token for the axes: ``" journey"`` -> ``"journey"``.

    The space GPT-2 tokens start with is dropped (it would be invisible anyway); a token of
    only whitespace shows it as · ↵ →; characters the font cannot draw (emoji) are named,
    e.g. ``U+1F44B``; a part of a character split over several tokens shows as ``\ufffd``.
    """
    drawable = font_has_glyphs()
    labels = []
    for token_id in token_ids:
        text = _token_text(int(token_id), tokenizer)
        label = text.strip() or "".join(WHITESPACE_MARKS.get(ch, ch) for ch in text)
        label = "".join(ch if drawable(ch) else f"U+{ord(ch):04X}" for ch in label)
        if len(label) > MAX_LABEL_CHARS:
            label = label[: MAX_LABEL_CHARS - 1] + "\u2026"
        labels.append(label)
    return labels


# --- static figures ------------------------------------------------------------------------


def _layer(stages, layer: int) -> dict:
    """One layer's dict, from either that dict or the list ``attention_stages`` returns."""
    if isinstance(stages, dict):
        return stages
    if not 0 <= layer < len(stages):
        raise IndexError(f"layer {layer} does not exist: the model has {len(stages)} layers.")
    return stages[layer]


def _layer_title(layer_stages: dict) -> str:
    """``layer 1 (trf_blocks.1.att)``, or just the name when the index is unknown."""
    name = layer_stages.get("name", "attention")
    index = layer_stages.get("layer")
    return name if index is None else f"layer {index} ({name})"


def _stage_titles(layer_stages: dict, head_dim_sqrt: float) -> dict[str, str]:
    p = layer_stages.get("dropout_p", 0.0)
    if layer_stages.get("train") and p > 0:
        dropout = f"5. dropout (p={p:g})\nred frame: zeroed; rest \u00d7{1 / (1 - p):.3g}"
    else:
        dropout = "5. dropout\noff (eval mode): no change"
    return {
        "scores": "1. scores\nquery \u00b7 key",
        "scaled": f"2. scaled\n\u00f7 \u221ahead_dim = \u00f7 {head_dim_sqrt:.3g}",
        "masked": "3. masked\nfuture keys \u2192 \u2212\u221e",
        "weights": "4. softmax\neach row sums to 1",
        "dropped": dropout,
    }


def _tick_step(n: int) -> int:
    """Label every token up to 40 tokens, then every k-th, so labels never overlap."""
    return max(1, math.ceil(n / 40))


def _label_axes(ax, tokens, rows: bool, cols: bool, fontsize: float) -> None:
    n = len(tokens)
    ticks = list(range(0, n, _tick_step(n)))
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set_xticklabels(
        [tokens[i] for i in ticks] if cols else [],
        rotation=90,
        family="monospace",
        fontsize=fontsize,
    )
    ax.set_yticklabels(
        [tokens[i] for i in ticks] if rows else [], family="monospace", fontsize=fontsize
    )
    ax.tick_params(length=0, pad=2)
    for spine in ax.spines.values():
        spine.set_visible(False)


def _annotate(ax, values: torch.Tensor, cmap, norm, fontsize: float, hidden=None) -> None:
    """Write each cell's value into it, dark or light to stay readable on its colour.

    ``hidden``: cells the causal mask hides; their (zero) weights are written in grey.
    """
    for i, row in enumerate(values.tolist()):
        for j, v in enumerate(row):
            if math.isinf(v):
                text, colour = "\u2212\u221e", MUTED_COLOR
            elif hidden is not None and hidden[i, j]:
                text, colour = "0", MUTED_COLOR
            else:
                r, g, b, _ = cmap(norm(v))
                light_cell = 0.299 * r + 0.587 * g + 0.114 * b > 0.55
                text, colour = f"{v:.2f}", TEXT_COLOR if light_cell else "white"
            label = ax.text(j, i, text, ha="center", va="center", fontsize=fontsize, color=colour)
            label.set_in_layout(False)  # inside its cell: the layout need not measure it (fast)


def _outline_cells(ax, cells: torch.Tensor, colour: str) -> None:
    """A thin frame around each cell where ``cells`` is True."""
    from matplotlib.patches import Rectangle

    for i, j in cells.nonzero().tolist():
        ax.add_patch(
            Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor=colour, linewidth=1.2)
        )


def _label_fontsize(n: int) -> float:
    return 9 if n <= 12 else (8 if n <= 24 else 6.5)


def _stages_layout(n: int, num_labels_chars: int) -> tuple[int, int, tuple[float, float]]:
    """(rows, cols, figsize): one row of five up to 8 tokens, else 3 + 2 with bigger panels,
    so the figure stays about as wide as a notebook (~13 inches at 90 dpi) and cells readable."""
    label_room = 0.075 * num_labels_chars + 0.35  # token labels left of and below a panel
    if n <= MAX_ANNOTATED_TOKENS:
        panel = 2.3
        return 1, 5, (5 * panel + 1.2 + label_room, panel + label_room + 0.9)
    panel = min(4.0, max(3.0, 0.18 * n + 1.0))
    return 2, 3, (3 * panel + 1.0 + label_room, 2 * (panel + label_room) + 1.0)


def plot_attention_stages(
    stages,
    tokens,
    head: int = 0,
    layer: int = 0,
    annotate: bool | None = None,
    title: str | None = None,
):
    """One head's five stages: scores, scaled, masked, softmax weights, after dropout.

    ``stages``: one dict from ``attention_stages`` (or the whole list; ``layer`` picks one).
    ``tokens``: a label per token; rows are queries (the token that looks), columns keys
    (the token looked at). The first three panels share a red-blue scale centred on 0, the
    last two a white-blue scale from 0; masked cells (\u2212\u221e) are grey, weights that dropout
    zeroed are framed in red. ``annotate`` writes the values into the cells (default: up to 8
    tokens, which also puts the five panels in one row; more tokens use two rows). Returns
    the ``Figure`` (5 heatmaps + 2 colourbars). In a notebook, end the cell with ``;``.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    layer_stages = _layer(stages, layer)
    num_heads, n, _ = layer_stages["scores"].shape
    if not 0 <= head < num_heads:
        raise IndexError(f"head {head} does not exist: this layer has {num_heads} heads.")
    if len(tokens) != n:
        raise ValueError(f"{len(tokens)} token labels for {n} tokens.")
    mats = {s: layer_stages[s][head] for s in STAGES}
    annotate = n <= MAX_ANNOTATED_TOKENS if annotate is None else annotate
    hidden = torch.isinf(mats["masked"])  # the future: -inf before softmax, 0 after
    dropped_out = (mats["weights"] > 0) & (mats["dropped"] == 0)
    # recover sqrt(head_dim) from the data rather than asking for it: scores / scaled
    nonzero = mats["scaled"].abs() > 1e-12
    ratios = mats["scores"][nonzero] / mats["scaled"][nonzero]
    sqrt_d = ratios.median().item() if ratios.numel() else 1.0

    score_lim = max(mats["scores"].abs().max().item(), 1e-6)
    weight_max = max(mats["weights"].max().item(), mats["dropped"].max().item(), 1e-6)
    score_cmap = plt.get_cmap(SCORE_CMAP).with_extremes(bad=MASKED_COLOR)
    weight_cmap = plt.get_cmap(WEIGHT_CMAP)
    score_norm = Normalize(-score_lim, score_lim)
    weight_norm = Normalize(0.0, weight_max)
    titles = _stage_titles(layer_stages, sqrt_d)

    rows, cols, figsize = _stages_layout(n, max((len(t) for t in tokens), default=1))
    fontsize = _label_fontsize(n)
    fig, grid = plt.subplots(rows, cols, figsize=figsize, layout="constrained", squeeze=False)
    axes = list(grid.flat)[:5]
    images = {}
    for index, (ax, stage) in enumerate(zip(axes, STAGES, strict=True)):
        values = mats[stage]
        is_score = stage in ("scores", "scaled", "masked")
        cmap, norm = (score_cmap, score_norm) if is_score else (weight_cmap, weight_norm)
        # -inf becomes NaN, which imshow draws in the colour map's "bad" colour (grey)
        shown = torch.where(torch.isinf(values), torch.nan, values).numpy()
        images[stage] = ax.imshow(shown, cmap=cmap, norm=norm)
        ax.set_title(titles[stage], fontsize=fontsize + 1)
        first_in_row = index in (0, cols)
        _label_axes(ax, tokens, rows=first_in_row, cols=True, fontsize=fontsize)
        ax.set_xlabel("key (the token looked at)", fontsize=fontsize)
        if first_in_row:
            ax.set_ylabel("query (the token that looks)", fontsize=fontsize)
        if annotate:
            _annotate(
                ax,
                values,
                cmap,
                norm,
                max(6.5, 9.5 - 0.35 * n),
                hidden=None if is_score else hidden,
            )
        if stage == "dropped":
            _outline_cells(ax, dropped_out, DROPPED_COLOR)
    fig.colorbar(images["masked"], ax=axes[:3], shrink=0.8, aspect=25, pad=0.01)
    if rows == 1:
        fig.colorbar(images["dropped"], ax=axes[3:], shrink=0.8, aspect=25, pad=0.01)
    else:  # the empty sixth cell holds the colourbar, so the columns stay aligned
        spare = grid[1, 2]
        spare.axis("off")
        cax = spare.inset_axes((0.0, 0.1, 0.05, 0.8))
        fig.colorbar(images["dropped"], cax=cax)
    if title is None:
        title = f"{_layer_title(layer_stages)} \u00b7 head {head} \u00b7 {n} tokens"
    fig.suptitle(title, fontsize=fontsize + 2)
    return fig


def plot_attention_heads(
    stages,
    tokens,
    layer: int = 0,
    stage: str = "weights",
    max_cols: int = 4,
    annotate: bool | None = None,
    title: str | None = None,
):
    """Every head of one layer side by side (``stage``, default the softmax weights).

    Heads usually specialise: one attends to the previous token, another to the first, etc.
    ``stages``: the list from ``attention_stages`` (or one layer's dict). Shares one colour
    scale (0 to the largest weight). Returns the ``Figure`` (one axes per head + a colourbar).
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, not {stage!r}.")
    layer_stages = _layer(stages, layer)
    values = layer_stages[stage]
    num_heads, n, _ = values.shape
    if len(tokens) != n:
        raise ValueError(f"{len(tokens)} token labels for {n} tokens.")
    annotate = (n <= 6 and num_heads <= 4) if annotate is None else annotate
    cols = min(num_heads, max_cols)
    rows = math.ceil(num_heads / cols)
    finite = values[torch.isfinite(values)]
    is_weights = stage in ("weights", "dropped")
    cmap = plt.get_cmap(WEIGHT_CMAP if is_weights else SCORE_CMAP).with_extremes(bad=MASKED_COLOR)
    lim = max(finite.abs().max().item(), 1e-6) if finite.numel() else 1.0
    norm = Normalize(0.0, lim) if is_weights else Normalize(-lim, lim)

    size = min(3.0, max(2.1, 0.2 * n + 0.6))
    fontsize = _label_fontsize(n) - 0.5
    label_room = 0.08 * max((len(t) for t in tokens), default=1) + 0.2
    fig, axes = plt.subplots(
        rows,
        cols,
        squeeze=False,
        layout="constrained",
        figsize=(cols * size + label_room + 0.9, rows * size + label_room + 0.6),
    )
    image = None
    for h, ax in enumerate(axes.flat):
        if h >= num_heads:
            ax.set_visible(False)
            continue
        shown = torch.where(torch.isinf(values[h]), torch.nan, values[h]).numpy()
        image = ax.imshow(shown, cmap=cmap, norm=norm)
        ax.set_title(f"head {h}", fontsize=fontsize + 1)
        last_row = h + cols >= num_heads  # nothing drawn below this one
        _label_axes(ax, tokens, rows=h % cols == 0, cols=last_row, fontsize=fontsize)
        if annotate:
            hidden = torch.isinf(layer_stages["masked"][h]) if is_weights else None
            _annotate(ax, values[h], cmap, norm, fontsize=7.5, hidden=hidden)
    fig.colorbar(image, ax=list(axes.flat), shrink=0.7, aspect=30, pad=0.02)
    if title is None:
        title = (
            f"{_layer_title(layer_stages)} \u00b7 {stage} of all {num_heads} heads "
            f"\u00b7 rows: queries, columns: keys"
        )
    fig.suptitle(title, fontsize=fontsize + 2)
    return fig


# --- the widget ----------------------------------------------------------------------------

VIEWS = ("stages", "all heads")
_MESSAGE_STYLE = (
    f"font-family:sans-serif; font-size:14px; color:{TEXT_COLOR}; background:#fffbeb; "
    "border:1px solid #fcd34d; border-radius:6px; padding:8px 12px; margin:4px 0"
)


def message_html(text: str) -> str:
    """A friendly note instead of a figure (empty or too long text)."""
    return f'<div style="{_MESSAGE_STYLE}">{html.escape(text)}</div>'


def figure_html(fig, dpi: int = 90) -> str:
    """The figure as an inline PNG, scaled to the width of the notebook; closes the figure."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" style="max-width:100%; height:auto">'


def _num_heads(module: nn.Module) -> int:
    return int(getattr(module, "num_heads", 1))


def viewer_summary(stages: list[dict], layer: int, head: int | None, dropout: bool) -> str:
    """``Attention viewer: layer 0, head 1 of 2 layers × 4 heads, 6 tokens``; ``head=None``
    for the "all heads" view."""
    n = plural(stages[layer]["scores"].shape[-1], "token")
    layers = plural(len(stages), "layer")
    if head is None:
        all_heads = plural(stages[layer]["scores"].shape[0], "head")
        line = f"Attention viewer: all {all_heads} of layer {layer} ({layers}), {n}"
    else:
        counts = sorted({s["scores"].shape[0] for s in stages})
        heads = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}\u2013{counts[-1]}"
        heads += " heads" if counts[-1] != 1 else " head"
        line = f"Attention viewer: layer {layer}, head {head} of {layers} \u00d7 {heads}, {n}"
    return line + (", dropout on" if dropout else "")


def attention_viewer(
    model: nn.Module,
    tokenizer=None,
    text: str = "Your journey starts with one step",
    layer: int = 0,
    head: int = 0,
    view: str = "stages",
):
    """A text box, layer and head sliders and a view switch over the model's attention.

    ``model``: a GPT-style model (forward takes a (1, n) tensor of token ids; its attention
    modules are found inside it), ``tokenizer`` defaults to GPT-2's. "stages" shows one
    head's five stages, "all heads" every head of the layer. "dropout" runs the model in
    training mode so the last stage shows dropout (seeded: the same picture every time).
    The returned ``VBox`` has ``.text``, ``.layer``, ``.head``, ``.view``, ``.dropout`` (the
    controls), ``.output`` (HTML holding the figure or a message) and ``.update()``; its
    ``repr`` is one line naming the layer and head shown. Stages: scaled, then masked (see the
    module docstring: the same weights as masking first).
    """
    import ipywidgets as widgets

    if tokenizer is None:
        from ..tokenizer import gpt2_tokenizer

        tokenizer = gpt2_tokenizer()
    modules = attention_modules(model)
    if not modules:
        raise ValueError("attention_viewer: the model contains no attention module.")
    max_tokens = context_length(model)
    style = {"description_width": "50px"}
    text_box = widgets.Textarea(value=text, layout=widgets.Layout(width="100%", height="3.5em"))
    layer_slider = widgets.IntSlider(
        value=layer,
        min=0,
        max=len(modules) - 1,
        description="layer",
        style=style,
        disabled=len(modules) == 1,
        continuous_update=False,
    )
    head_slider = widgets.IntSlider(
        value=head,
        min=0,
        max=_num_heads(modules[layer]) - 1,
        description="head",
        style=style,
        continuous_update=False,
    )
    view_buttons = widgets.ToggleButtons(options=list(VIEWS), value=view)
    dropout_box = widgets.Checkbox(value=False, description="dropout (training mode)", indent=False)
    output = widgets.HTML()
    cache = {"key": None, "stages": None, "tokens": None}
    state = {"summary": ""}
    busy = [False]  # adjusting the head slider's range must not redraw a second time

    def compute() -> str | None:
        """Run the model if the text or mode changed; return a message if it cannot."""
        key = (text_box.value, dropout_box.value)
        if cache["key"] == key:
            return None
        cache.update(key=None, stages=None, tokens=None)
        try:
            ids = encode(text_box.value, tokenizer)
        except Exception as err:  # noqa: BLE001 - e.g. a word SimpleTokenizerV1 does not know
            state["summary"] = "Attention viewer: the tokenizer cannot encode this text"
            return f"The tokenizer cannot encode this text ({type(err).__name__}: {err})."
        if not ids:
            state["summary"] = "Attention viewer: no text to look at"
            return "Type some text above to see where each token looks."
        if len(ids) > max_tokens:
            state["summary"] = (
                f"Attention viewer: {len(ids)} tokens, more than the model's {max_tokens}"
            )
            return (
                f"This text is {len(ids)} tokens long, but the model reads at most "
                f"{max_tokens} (its context_length). Shorten it to see the attention."
            )
        stages = attention_stages(model, ids, train=dropout_box.value)
        cache.update(key=key, stages=stages, tokens=token_labels(ids, tokenizer))
        return None

    def update(change=None):
        if busy[0]:
            return
        message = compute()
        if message is not None or cache["stages"] is None:
            output.value = message_html(message or "Nothing to show.")
            return
        heads = cache["stages"][layer_slider.value]["scores"].shape[0]
        busy[0] = True
        try:  # layers may differ in heads; ipywidgets clamps the value to the new max
            head_slider.max = heads - 1
            head_slider.disabled = view_buttons.value == "all heads" or heads == 1
        finally:
            busy[0] = False
        state["summary"] = viewer_summary(
            cache["stages"],
            layer_slider.value,
            None if view_buttons.value == "all heads" else head_slider.value,
            dropout_box.value,
        )
        if view_buttons.value == "all heads":
            fig = plot_attention_heads(cache["stages"], cache["tokens"], layer=layer_slider.value)
        else:
            fig = plot_attention_stages(
                cache["stages"], cache["tokens"], head=head_slider.value, layer=layer_slider.value
            )
        output.value = figure_html(fig)

    for control in (text_box, layer_slider, head_slider, view_buttons, dropout_box):
        control.observe(update, names="value")
    update()

    heads = sorted({_num_heads(m) for m in modules})
    heads_text = f"{heads[0]}" if len(heads) == 1 else f"{heads[0]}\u2013{heads[-1]}"
    note = widgets.HTML(
        f'<span style="font-family:sans-serif; font-size:12px; color:{MUTED_COLOR}">'
        f"{len(modules)} layer{'s' if len(modules) != 1 else ''}, {heads_text} "
        f"head{'s' if heads[-1] != 1 else ''} each, up to {max_tokens} tokens \u00b7 "
        "scaled, then masked: the same weights as masking first "
        "(\u2212\u221e \u00f7 \u221ahead_dim is still \u2212\u221e)</span>"
    )
    controls = widgets.HBox([layer_slider, head_slider, view_buttons])
    box = panel(
        [text_box, controls, widgets.HBox([dropout_box, note]), output],
        summary=lambda: state["summary"],
        layout=widgets.Layout(width="100%"),
    )
    box.text, box.layer, box.head, box.view, box.dropout = (
        text_box,
        layer_slider,
        head_slider,
        view_buttons,
        dropout_box,
    )
    box.output, box.update, box.model, box.tokenizer = output, update, model, tokenizer
    return box


if __name__ == "__main__":  # usage example: python -m helpers.widgets.attention_viewer
    import matplotlib

    matplotlib.use("Agg")
    from ..attention import MultiHeadAttention

    torch.manual_seed(123)
    words = ["Your", "journey", "starts", "with", "one", "step"]
    embeddings = torch.rand(len(words), 3)
    mha = MultiHeadAttention(d_in=3, d_out=4, context_length=6, dropout=0.1, num_heads=2)
    stages = attention_stages(mha, embeddings, train=True)
    print("head 0, softmax weights:\n", stages[0]["weights"][0])
    print("head 0, after dropout:\n", stages[0]["dropped"][0])
    fig = plot_attention_stages(stages, words, head=0)  # in a notebook: shows the figure
    print(f"figure with {len(fig.axes)} axes (5 stages, 2 colourbars)")
