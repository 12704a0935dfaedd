"""Sampling playground: how temperature, top-k and top-p shape the next token (notebook 06).

Pure functions do the work; the widget only wires a prompt and sliders to them:

- ``top_candidates(probs, tokenizer)``           the likeliest next tokens: (text, id, prob)
- ``token_label(token_id, tokenizer)``           a token as drawn: spaces as ·, e.g. ``·the``
- ``plot_next_token_probs(probs, tokenizer)``    bar chart of the top next-token probabilities,
                                                 the ones top-k/top-p keep in colour
- ``plot_temperature_effect(logits, labels)``    the same logits at several temperatures
- ``sampling_playground(model, tokenizer)``      the interactive version

The numbers come from ``helpers.generate`` (``next_token_logits``, ``filter_logits``,
``generate``), the same code the notebook generates text with.

    >>> probs = next_token_distribution(model, ids, context_size=256)
    >>> top_candidates(probs, tokenizer, n=3)
    [Candidate(text=' the', id=262, prob=0.08), ...]
"""

from __future__ import annotations

import html
import warnings
from typing import NamedTuple

import torch
from torch import nn

from ..generate import (
    PromptCroppedWarning,
    filter_logits,
    generate,
    next_token_logits,
    softmax_with_temperature,
)
from .attention_viewer import context_length, figure_html, message_html
from .panel import panel, quoted_summary
from .token_viewer import (
    MUTED_COLOR,
    TEXT_COLOR,
    WHITESPACE_MARKS,
    encode,
    font_has_glyphs,
)

KEPT_COLOR = "#2563eb"  # tokens the sampler can still draw
DROPPED_COLOR = "#cbd5e1"  # tokens top-k / top-p removed
TEMPERATURE_COLORS = ("#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6")
MAX_LABEL_CHARS = 14


class Candidate(NamedTuple):
    """One possible next token: its text (with real spaces), its id and its probability."""

    text: str
    id: int
    prob: float


# --- tokens as text ------------------------------------------------------------------------


def _token_bytes(token_id: int, tokenizer) -> bytes | None:
    """The token's bytes for byte-level tokenizers (tiktoken, BPETokenizer), else ``None``."""
    if hasattr(tokenizer, "decode_single_token_bytes"):
        return tokenizer.decode_single_token_bytes(token_id)
    return None


def token_text(token_id: int, tokenizer) -> str:
    """What one token stands for; a token that is only part of a character shows ``\ufffd``."""
    raw = _token_bytes(token_id, tokenizer)
    if raw is not None:
        return raw.decode("utf-8", "replace")
    if hasattr(tokenizer, "int_to_str"):  # SimpleTokenizerV1/V2: words, no bytes
        return str(tokenizer.int_to_str[token_id])
    return tokenizer.decode([token_id])


def token_label(token_id: int, tokenizer, drawable=None) -> str:
    """A token as a chart shows it: spaces as ·, newlines as ↵, tabs as →, so ``" the"`` is
    ``·the``; bytes that are not a whole character as ``\\xe2\\x80``; characters the font
    cannot draw (emoji) as ``U+1F600``. Long tokens are cut with an ellipsis."""
    drawable = drawable or font_has_glyphs()
    raw = _token_bytes(token_id, tokenizer)
    try:
        text = raw.decode("utf-8") if raw is not None else token_text(token_id, tokenizer)
    except UnicodeDecodeError:  # e.g. the first half of an emoji: show its bytes
        label = "".join(f"\\x{b:02x}" for b in raw)
    else:
        label = "".join(WHITESPACE_MARKS.get(ch, ch) for ch in text)
        label = "".join(ch if drawable(ch) else f"U+{ord(ch):04X}" for ch in label)
    if len(label) > MAX_LABEL_CHARS:
        label = label[: MAX_LABEL_CHARS - 1] + "\u2026"
    return label or "(empty)"


def top_candidates(probs: torch.Tensor, tokenizer, n: int = 10) -> list[Candidate]:
    """The ``n`` likeliest next tokens of a (vocab,) distribution, likeliest first.

    Equal probabilities keep the order of the ids (lower first), so the list is stable.
    """
    probs = probs.detach().float().cpu()
    order = torch.sort(probs, descending=True, stable=True).indices[: max(0, n)]
    return [Candidate(token_text(int(i), tokenizer), int(i), float(probs[i])) for i in order]


# --- static figures ------------------------------------------------------------------------


def _percent(p: float) -> str:
    """41.2%; below 0.1% two significant digits (0.015%: an untrained model's 1 / 50,257),
    so small probabilities neither read as 0 nor all look alike."""
    if p == 0:
        return "0%"
    if p < 1e-6:
        return "<0.0001%"
    if p < 0.001:
        return f"{100 * p:.2g}%"
    return f"{p:.1%}"


def plot_next_token_probs(
    probs: torch.Tensor,
    tokenizer,
    n: int = 10,
    kept_mask: torch.Tensor | None = None,
    title: str | None = None,
    ax=None,
    removed_label: str = "removed by top-k / top-p",
):
    """Horizontal bars of the ``n`` likeliest next tokens, the likeliest on top.

    ``probs``: a (vocab,) distribution, usually ``softmax(logits / temperature)`` before
    top-k/top-p. ``kept_mask``: (vocab,) booleans, the tokens top-k/top-p leave to draw from
    (``torch.isfinite(filter_logits(...))``). Kept bars are blue, removed ones grey; when some
    are removed, each kept bar also shows its probability after renormalising (``→ 55.0%``),
    which is what the sampler really draws with. ``removed_label`` names the grey bars in
    the legend. Returns the ``Figure``.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    probs = probs.detach().float().cpu()
    candidates = top_candidates(probs, tokenizer, n)
    kept = (
        torch.ones_like(probs, dtype=torch.bool)
        if kept_mask is None
        else kept_mask.detach().bool().cpu()
    )
    filtering = bool((~kept).any())
    kept_mass = float(probs[kept].sum())
    drawable = font_has_glyphs()
    labels = [token_label(c.id, tokenizer, drawable) for c in candidates]

    if ax is None:
        fig, ax = plt.subplots(figsize=(7.5, 0.34 * len(candidates) + 1.3), layout="constrained")
    else:
        fig = ax.figure
    rows = range(len(candidates))
    colours = [KEPT_COLOR if kept[c.id] else DROPPED_COLOR for c in candidates]
    ax.barh(rows, [c.prob for c in candidates], color=colours, height=0.7)
    ax.set_yticks(list(rows))
    ax.set_yticklabels(labels, family="monospace", fontsize=10)
    ax.invert_yaxis()  # likeliest on top
    top = max((c.prob for c in candidates), default=1.0) or 1.0
    ax.set_xlim(0, top * (1.45 if filtering else 1.2))  # room for the numbers after the bars
    for row, c in zip(rows, candidates):
        text = _percent(c.prob)
        if filtering and kept[c.id] and kept_mass > 0:
            text += f" \u2192 {_percent(c.prob / kept_mass)}"
        ax.text(
            c.prob + top * 0.015,
            row,
            text,
            va="center",
            fontsize=9,
            color=TEXT_COLOR if kept[c.id] else MUTED_COLOR,
        )
    ax.xaxis.set_major_formatter(PercentFormatter(xmax=1.0))
    ax.set_xlabel("probability of being the next token")
    ax.tick_params(axis="y", length=0)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if filtering:
        from matplotlib.patches import Patch

        n_kept = int(kept.sum())
        ax.legend(
            handles=[
                Patch(color=KEPT_COLOR, label=f"kept: {n_kept:,} token{'s' * (n_kept != 1)}"),
                Patch(color=DROPPED_COLOR, label=removed_label),
            ],
            loc="lower right",
            fontsize=9,
            frameon=False,
        )
    if title is None:
        title = f"The {len(candidates)} likeliest next tokens (of {probs.numel():,})"
    ax.set_title(title, fontsize=11, loc="left")
    return fig


def _labels_in_order(vocab_labels) -> list[str]:
    """A list of labels, or a ``{word: id}`` vocabulary put in id order."""
    if isinstance(vocab_labels, dict):
        return [word for word, _ in sorted(vocab_labels.items(), key=lambda item: item[1])]
    return [str(label) for label in vocab_labels]


def plot_temperature_effect(logits, vocab_labels, temperatures=(1, 0.1, 5), ax=None):
    """Grouped bars: ``softmax(logits / T)`` of every token, one bar colour per temperature.

    Low temperatures pile the probability onto the likeliest token, high ones spread it out.
    ``vocab_labels``: one label per logit, or a ``{word: id}`` vocabulary. Returns the
    ``Figure``.
    """
    import matplotlib.pyplot as plt

    logits = torch.as_tensor(logits, dtype=torch.float32)
    labels = _labels_in_order(vocab_labels)
    if len(labels) != logits.shape[-1]:
        raise ValueError(f"{len(labels)} labels for {logits.shape[-1]} logits.")
    if ax is None:
        figsize = (max(6.0, 0.75 * len(labels) + 1.5), 3.6)
        fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    else:
        fig = ax.figure
    width = 0.8 / len(temperatures)
    for i, t in enumerate(temperatures):
        probs = softmax_with_temperature(logits, t)
        offset = (i - (len(temperatures) - 1) / 2) * width
        ax.bar(
            [x + offset for x in range(len(labels))],
            probs.tolist(),
            width,
            label=f"temperature = {t:g}",
            color=TEMPERATURE_COLORS[i % len(TEMPERATURE_COLORS)],
        )
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=30, ha="right")
    ax.set_ylabel("probability")
    ax.set_ylim(0, 1.02)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.legend(frameon=False, fontsize=9)
    return fig


# --- the widget ----------------------------------------------------------------------------

_TEXT_STYLE = (
    "font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:14px; "
    f"line-height:1.6; white-space:pre-wrap; word-break:break-word; color:{TEXT_COLOR}; "
    "background:#ffffff; padding:6px 8px; border:1px solid #e5e7eb; border-radius:6px"
)
_NOTE_STYLE = f"font-family:sans-serif; font-size:12px; color:{MUTED_COLOR}; margin:2px 0"


def settings_text(temperature: float, top_k: int | None, top_p: float | None) -> str:
    """``temperature 0.70 · top-k 50 · top-p off``, or ``greedy (temperature 0)``."""
    if temperature == 0:
        return "greedy (temperature 0): always the likeliest token"
    k = "off" if top_k is None else str(top_k)
    p = "off" if top_p is None else f"{top_p:.2f}"
    return f"temperature {temperature:.2f} \u00b7 top-k {k} \u00b7 top-p {p}"


def playground_summary(
    prompt: str, temperature: float, top_k: int | None, top_p: float | None
) -> str:
    """``Sampling playground: 'Every effort moves you', temperature 1.00, top-k 50, top-p off``."""
    if not prompt.strip():
        return "Sampling playground: no prompt"
    if temperature == 0:
        how = "greedy (temperature 0)"
    else:
        k = "off" if top_k is None else str(top_k)
        p = "off" if top_p is None else f"{top_p:.2f}"
        how = f"temperature {temperature:.2f}, top-k {k}, top-p {p}"
    return quoted_summary("Sampling playground", prompt, f", {how}")


def continuation_html(prompt: str, continuation: str, note: str = "") -> str:
    """The prompt in grey, the generated text in bold on a light highlight, a note above."""
    note_div = f'<div style="{_NOTE_STYLE}">{html.escape(note)}</div>' if note else ""
    return (
        f"<div>{note_div}<div style=\"{_TEXT_STYLE}\">"
        f'<span style="color:{MUTED_COLOR}">{html.escape(prompt)}</span>'
        f'<b style="background:#dbeafe">{html.escape(continuation)}</b></div></div>'
    )


def _vocab_size(model: nn.Module, tokenizer) -> int:
    head = getattr(model, "out_head", None)
    if isinstance(head, nn.Linear):
        return head.out_features
    return int(getattr(tokenizer, "n_vocab", 100))


def sampling_playground(
    model: nn.Module,
    tokenizer=None,
    prompt: str = "Every effort moves you",
    max_new_tokens: int = 25,
    seed: int = 123,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    context_size: int | None = None,
    eos_id: int | None = None,
):
    """A prompt, sampling sliders and a seed over the next-token chart and a continuation.

    The chart shows the model's distribution for the token after the prompt at the chosen
    temperature (at temperature 0, the plain softmax, with only the greedy pick kept), in
    colour the tokens top-k / top-p leave. The text below is ``generate`` with these
    settings, seeded: the same settings give the same text. ``top_k`` 0 and ``top_p`` 1
    mean off. Sliders redraw when released, since each draw runs the model.
    The returned ``VBox`` has ``.prompt``, ``.temperature``, ``.top_k``, ``.top_p``,
    ``.max_new_tokens``, ``.seed`` (the controls), ``.chart`` and ``.text`` (HTML) and
    ``.update()``; its ``repr`` is one line: the prompt and the sampling settings.
    """
    import ipywidgets as widgets

    if tokenizer is None:
        from ..tokenizer import gpt2_tokenizer

        tokenizer = gpt2_tokenizer()
    context_size = context_size or context_length(model)
    style = {"description_width": "95px"}
    slider = {"continuous_update": False, "style": style, "layout": widgets.Layout(width="330px")}
    prompt_box = widgets.Textarea(
        value=prompt,
        placeholder="Type a prompt",
        continuous_update=False,
        layout=widgets.Layout(width="100%", height="3.5em"),
    )
    temperature_slider = widgets.FloatSlider(
        value=temperature,
        min=0.0,
        max=2.0,
        step=0.05,
        description="temperature",
        readout_format=".2f",
        **slider,
    )
    top_k_slider = widgets.IntSlider(
        value=top_k,
        min=0,
        max=min(100, _vocab_size(model, tokenizer)),
        description="top-k (0 = off)",
        **slider,
    )
    top_p_slider = widgets.FloatSlider(
        value=top_p,
        min=0.05,
        max=1.0,
        step=0.01,
        description="top-p (1 = off)",
        readout_format=".2f",
        **slider,
    )
    length_slider = widgets.IntSlider(
        value=max_new_tokens,
        min=1,
        max=max(100, max_new_tokens),
        description="new tokens",
        **slider,
    )
    seed_box = widgets.IntText(
        value=seed, description="seed", style=style, layout=widgets.Layout(width="200px")
    )
    chart = widgets.HTML()
    text = widgets.HTML()
    cache = {"prompt": None, "ids": None, "logits": None, "message": None}

    def settings():
        k = top_k_slider.value or None
        p = top_p_slider.value if top_p_slider.value < 1 else None
        return float(temperature_slider.value), k, p

    def prepare() -> None:
        """Encode the prompt and run the model once per prompt (the sliders reuse it)."""
        if cache["prompt"] == prompt_box.value:
            return
        cache.update(prompt=prompt_box.value, ids=None, logits=None, message=None)
        try:
            ids = encode(prompt_box.value, tokenizer)
        except Exception as err:  # noqa: BLE001 - shown to the user, not raised in a widget
            cache["message"] = (
                f"The tokenizer cannot encode this prompt ({type(err).__name__}: {err})."
            )
            return
        if not ids:
            cache["message"] = "Type a prompt above: the model needs at least one token to go on."
            return
        with warnings.catch_warnings():  # a long prompt gets a note below, not a warning box
            warnings.simplefilter("ignore", PromptCroppedWarning)
            cache.update(ids=ids, logits=next_token_logits(model, ids, context_size))

    def crop_note() -> str:
        n = len(cache["ids"])
        if n <= context_size:
            return ""
        return f"The prompt has {n} tokens; the model sees only the last {context_size}. "

    def update_chart(change=None):
        prepare()
        if cache["message"]:
            chart.value = message_html(cache["message"])
            return
        t, k, p = settings()
        logits = cache["logits"]
        kept = torch.isfinite(filter_logits(logits, t, k, p))
        probs = softmax_with_temperature(logits, t if t > 0 else 1.0)
        title = f"Next token \u00b7 {settings_text(t, k, p)}"
        removed = "not the greedy pick" if t == 0 else "removed by top-k / top-p"
        fig = plot_next_token_probs(
            probs, tokenizer, kept_mask=kept, title=title, removed_label=removed
        )
        chart.value = figure_html(fig)

    def update_text(change=None):
        prepare()
        if cache["message"]:
            text.value = message_html(cache["message"])
            return
        t, k, p = settings()
        idx = torch.tensor([cache["ids"]])
        device = next((param.device for param in model.parameters()), torch.device("cpu"))
        devices = [device.index or 0] if device.type == "cuda" else []
        # seed a private copy of the random state, so the playground never shifts the
        # random numbers of the notebook's later cells
        with warnings.catch_warnings(), torch.random.fork_rng(devices=devices):
            warnings.simplefilter("ignore", PromptCroppedWarning)
            torch.manual_seed(seed_box.value)
            out = generate(
                model, idx.to(device), length_slider.value, context_size, t, k, p, eos_id
            )
        shown_prompt = out[0, : min(len(cache["ids"]), context_size)].tolist()
        new = out[0, len(shown_prompt):].tolist()
        how = "greedy" if t == 0 else f"seed {seed_box.value}"
        note = f"{crop_note()}{len(new)} new tokens, {how}."
        text.value = continuation_html(
            tokenizer.decode(shown_prompt), tokenizer.decode(new), note
        )

    def update(change=None):
        update_text()
        update_chart()

    for control in (prompt_box, temperature_slider, top_k_slider, top_p_slider):
        control.observe(update, names="value")
    for control in (length_slider, seed_box):  # these change the text, not the chart
        control.observe(update_text, names="value")
    update()

    box = panel(
        [
            prompt_box,
            widgets.HBox([temperature_slider, top_k_slider, top_p_slider]),
            widgets.HBox([length_slider, seed_box]),
            text,
            chart,
        ],
        summary=lambda: playground_summary(prompt_box.value, *settings()),
        layout=widgets.Layout(width="100%"),
    )
    box.prompt, box.temperature, box.top_k, box.top_p = (
        prompt_box,
        temperature_slider,
        top_k_slider,
        top_p_slider,
    )
    box.max_new_tokens, box.seed, box.chart, box.text = length_slider, seed_box, chart, text
    box.update, box.model, box.tokenizer = update, model, tokenizer
    return box


if __name__ == "__main__":  # usage example: python -m helpers.widgets.sampling_playground
    import matplotlib

    matplotlib.use("Agg")
    words = ["closer", "every", "effort", "forward", "inches", "moves", "pizza", "toward", "you"]
    vocab = {word: i for i, word in enumerate(words)}
    logits = torch.tensor([4.51, 0.89, -1.90, 6.75, 1.63, -1.62, -1.89, 6.28, 1.79])
    fig = plot_temperature_effect(logits, vocab)  # in a notebook: shows the book's figure
    print(f"figure with {len(fig.axes[0].patches)} bars (9 words x 3 temperatures)")
