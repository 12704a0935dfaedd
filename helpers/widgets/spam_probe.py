"""Spam probe: type a message, see P(spam) and which tokens push it up or down (notebook 08).

Pure functions do the work; the widget only wires a text box to them:

- ``token_influence(text, model, tokenizer, device)``  per token: how much P(spam) drops
                                                       when that token is left out
- ``probe_html(text, model, tokenizer, device)``       P(spam) as a bar over the message's
                                                       tokens, red (towards spam) / green
                                                       (towards not spam), values on hover
- ``spam_probe(model, tokenizer)``                     the interactive version

The method is occlusion by deletion ("leave one out"): the message is run once whole and once
per token with that token removed, every version cut and padded exactly as
``helpers.classify.spam_probability`` does, all in one batch. A token's influence is
P(spam | whole message) - P(spam | message without it): positive means the token made the
message look more like spam. ``method="pad"`` replaces the token with the pad token instead
of removing it, which keeps every other token in its place. Neither is a perfect "as if the
word were not there": removing shifts the later tokens by one position and adds a pad token
at the end, and a pad token mid-message is something the model never saw in training; a
small, briefly trained model can react strongly to either. And both measure one token at a
time: two words that only matter together (or that stand in for each other) show less
influence than they have as a pair, and a message the model is sure about (P(spam) near 0
or 1) may show little colour although its verdict is clear.

    >>> probe = token_influence("WINNER! Claim your prize now", model, tokenizer, "cpu")
    >>> max(probe, key=lambda t: t.influence)
    TokenInfluence(text=' prize', id=11596, influence=0.31)
"""

from __future__ import annotations

import html
from typing import NamedTuple

import torch
from torch import nn

from ..classify import (
    PAD_TOKEN_ID,
    encode_message,
    last_token_logits,
    model_context_length,
    pad_or_truncate,
)
from ..runtime import eval_mode
from .attention_viewer import message_html
from .panel import panel, plural, quote, quoted_summary
from .sampling_playground import token_text
from .token_viewer import MUTED_COLOR, TEXT_COLOR

SPAM_RGB = (220, 38, 38)  # red: this token pushes towards spam
HAM_RGB = (22, 163, 74)  # green: this token pushes towards not spam
# Influences are scaled against at least this much (5 percentage points), so the noise of an
# untrained model stays pale instead of being blown up to full colour.
MIN_COLOUR_SCALE = 0.05
DEFAULT_TEXT = (
    "You are a winner you have been specially selected to receive $1000 cash or a $2000 award."
)
METHODS = ("remove", "pad")
EMPTY_MESSAGE = "Type a message above to see how spammy the model finds it."


class TokenInfluence(NamedTuple):
    """One token of the message: its text, its id, and P(spam) with it minus without it."""

    text: str
    id: int
    influence: float


class Probe(NamedTuple):
    """What ``probe`` measures: P(spam) of the message, each token's influence, and the
    tokens beyond ``max_length`` that the model never reads (their influence is 0)."""

    probability: float
    tokens: list[TokenInfluence]
    unread: list[TokenInfluence]


def _occluded(ids: list[int], i: int, method: str, pad_token_id: int) -> list[int]:
    if method == "remove":
        return ids[:i] + ids[i + 1 :]
    return ids[:i] + [pad_token_id] + ids[i + 1 :]


def _spam_probabilities(
    rows: list[list[int]], model: nn.Module, device, batch_size: int
) -> torch.Tensor:
    """P(spam) of each row of equal-length ids, ``batch_size`` rows per forward pass."""
    out = []
    with eval_mode(model):
        for start in range(0, len(rows), batch_size):
            batch = torch.tensor(rows[start : start + batch_size], device=device)
            logits = last_token_logits(model, batch).float()
            out.append(torch.softmax(logits, dim=-1)[:, 1].cpu())
    return torch.cat(out)


def probe(
    text: str,
    model: nn.Module,
    tokenizer,
    device="cpu",
    max_length: int | None = None,
    pad_token_id: int = PAD_TOKEN_ID,
    method: str = "remove",
    batch_size: int = 32,
) -> Probe:
    """P(spam) of ``text`` and every read token's influence on it (see the module docstring).

    ``max_length``: as in ``classify_review``: the model's context length by default; pass
    the training set's ``max_length`` to probe messages as the model saw them in training.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    ids = encode_message(text, tokenizer)
    context = model_context_length(model)
    length = context if max_length is None else min(max_length, context)
    read, beyond = ids[:length], ids[length:]
    rows = [pad_or_truncate(read, length, pad_token_id)]
    rows += [
        pad_or_truncate(_occluded(read, i, method, pad_token_id), length, pad_token_id)
        for i in range(len(read))
    ]
    probs = _spam_probabilities(rows, model, device, batch_size)
    whole = float(probs[0])
    tokens = [
        TokenInfluence(token_text(t, tokenizer), t, whole - float(p))
        for t, p in zip(read, probs[1:])
    ]
    unread = [TokenInfluence(token_text(t, tokenizer), t, 0.0) for t in beyond]
    return Probe(whole, tokens, unread)


def token_influence(
    text: str,
    model: nn.Module,
    tokenizer,
    device="cpu",
    max_length: int | None = None,
    pad_token_id: int = PAD_TOKEN_ID,
    method: str = "remove",
) -> list[TokenInfluence]:
    """Each token the model reads, in message order, with P(spam) whole minus without it.

    Sort by ``influence`` for the strongest spam signals (largest) or ham signals (smallest).
    """
    return probe(text, model, tokenizer, device, max_length, pad_token_id, method).tokens


# --- HTML ----------------------------------------------------------------------------------

_BOX_STYLE = (
    "font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:14px; "
    f"line-height:1.9; white-space:pre-wrap; word-break:break-word; color:{TEXT_COLOR}; "
    "background:#ffffff; padding:6px 8px; border:1px solid #e5e7eb; border-radius:6px"
)
_NOTE_STYLE = f"font-family:sans-serif; font-size:12px; color:{MUTED_COLOR}; margin:4px 0"


def influence_colour(influence: float, scale: float) -> str:
    """A CSS background: red for spam-ward, green for ham-ward, stronger the larger |value|."""
    rgb = SPAM_RGB if influence > 0 else HAM_RGB
    alpha = min(1.0, abs(influence) / scale) * 0.85 if scale > 0 else 0.0
    return f"rgba({rgb[0]},{rgb[1]},{rgb[2]},{alpha:.2f})"


def _points(value: float) -> str:
    """A change of probability in percentage points, signed: ``+12.3`` / ``-0.4`` / ``±0.0``."""
    text = f"{value * 100:+.1f}"
    return "\u00b10.0" if text in ("+0.0", "-0.0") else text  # no sign for what rounds to 0


def probability_bar_html(probability: float) -> str:
    """P(spam) as a labelled bar, with the verdict ``classify_review`` would give."""
    verdict = "spam" if probability > 0.5 else "not spam"
    colour = "rgb({},{},{})".format(*(SPAM_RGB if probability > 0.5 else HAM_RGB))
    return (
        '<div style="font-family:sans-serif; font-size:14px; margin:4px 0 8px 0; '
        f'color:{TEXT_COLOR}">'
        f'<div style="margin-bottom:3px">P(spam) = <b>{probability:.1%}</b> \u2192 '
        f'<b style="color:{colour}">{verdict}</b></div>'
        '<div style="width:100%; max-width:480px; height:14px; background:#e5e7eb; '
        'border-radius:7px; overflow:hidden">'
        f'<div style="width:{probability * 100:.1f}%; height:100%; background:{colour}">'
        "</div></div></div>"
    )


def _token_span(token: TokenInfluence, scale: float, read: bool = True) -> str:
    if not read:
        title = f"id {token.id} \u00b7 beyond max_length: the model does not read it"
        style = f"color:{MUTED_COLOR}; text-decoration:line-through"
    else:
        change = _points(token.influence)
        title = f"id {token.id} \u00b7 P(spam) {change} points with it than without"
        style = f"background:{influence_colour(token.influence, scale)}; border-radius:3px"
    return f'<span title="{html.escape(title)}" style="{style}">{html.escape(token.text)}</span>'


def probe_html(
    text: str,
    model: nn.Module,
    tokenizer,
    device="cpu",
    max_length: int | None = None,
    pad_token_id: int = PAD_TOKEN_ID,
    method: str = "remove",
) -> str:
    """P(spam) as a bar, then the message's tokens coloured by their influence on it.

    Red: the token pushes towards spam; green: towards not spam; hover for the value in
    percentage points. Colours are scaled to the strongest token (at least 5 points).
    """
    if not encode_message(text, tokenizer):
        return message_html(EMPTY_MESSAGE)
    result = probe(text, model, tokenizer, device, max_length, pad_token_id, method)
    return _result_html(result, method)


def _result_html(result: Probe, method: str) -> str:
    scale = max([abs(t.influence) for t in result.tokens] + [MIN_COLOUR_SCALE])
    spans = [_token_span(t, scale) for t in result.tokens]
    spans += [_token_span(t, scale, read=False) for t in result.unread]
    how = "left out" if method == "remove" else "replaced by the pad token"
    note = (
        '<span style="background:rgba(220,38,38,0.6); padding:0 6px">red</span> pushes '
        'towards spam, <span style="background:rgba(22,163,74,0.6); padding:0 6px">green'
        f"</span> towards not spam: how P(spam) changes when the token is {how}. "
        "Hover over a token for its id and value."
    )
    if scale == MIN_COLOUR_SCALE:
        note += (
            f" No single token moves P(spam) by {MIN_COLOUR_SCALE:.0%} or more: the verdict "
            "rests on several tokens together (or the model has not learnt much yet)."
        )
    if result.unread:
        note += (
            f" Only the first {len(result.tokens)} tokens are read; "
            f"{len(result.unread)} more are crossed out."
        )
    strongest = max(result.tokens, key=lambda t: abs(t.influence))
    summary = (
        f"Strongest token: {html.escape(repr(strongest.text))} "
        f"({_points(strongest.influence)} points)."
    )
    return (
        f"<div>{probability_bar_html(result.probability)}"
        f'<div style="{_BOX_STYLE}">{"".join(spans)}</div>'
        f'<div style="{_NOTE_STYLE}">{summary} {note}</div></div>'
    )


# --- the widget ----------------------------------------------------------------------------


def probe_summary(text: str, result: Probe) -> str:
    """``Spam probe: 'You are…' P(spam) 97.1%, 21 tokens; strongest ' winner' +12.3 pts``:
    the strongest token's influence in percentage points."""
    rest = f" P(spam) {result.probability:.1%}, {plural(len(result.tokens), 'token')}"
    rest += f" (+{len(result.unread)} unread)" if result.unread else ""
    if result.tokens:
        strongest = max(result.tokens, key=lambda t: abs(t.influence))
        rest += f"; strongest {quote(strongest.text, 12)} {_points(strongest.influence)} pts"
    return quoted_summary("Spam probe", text, rest)


def spam_probe(
    model: nn.Module,
    tokenizer=None,
    device="cpu",
    text: str = DEFAULT_TEXT,
    max_length: int | None = None,
    pad_token_id: int = PAD_TOKEN_ID,
    method: str = "remove",
):
    """A text box over ``probe_html``: P(spam) and each token's push, redrawn on each edit.

    Redraws when the box loses focus (or Ctrl+Enter), not on every key: each draw runs the
    model once per token. The returned ``VBox`` has ``.text`` (the ``Textarea``), ``.output``
    (the ``HTML``) and ``.update()``; its ``repr`` is one line: P(spam) and the strongest token.
    """
    import ipywidgets as widgets

    if tokenizer is None:
        from ..tokenizer import gpt2_tokenizer

        tokenizer = gpt2_tokenizer()
    text_box = widgets.Textarea(
        value=text,
        placeholder="Type a text message",
        continuous_update=False,
        layout=widgets.Layout(width="100%", height="4.5em"),
    )
    output = widgets.HTML()
    state = {"summary": ""}

    def update(change=None):
        text = text_box.value
        try:
            if not encode_message(text, tokenizer):
                output.value = message_html(EMPTY_MESSAGE)
                state["summary"] = "Spam probe: no message to probe"
                return
            result = probe(text, model, tokenizer, device, max_length, pad_token_id, method)
            output.value = _result_html(result, method)
            state["summary"] = probe_summary(text, result)
        except Exception as err:  # noqa: BLE001 - shown in the widget, not raised in a callback
            output.value = message_html(f"Could not probe this text ({type(err).__name__}: {err}).")
            state["summary"] = f"Spam probe: could not probe this text ({type(err).__name__})"

    text_box.observe(update, names="value")
    update()
    box = panel(
        [text_box, output], summary=lambda: state["summary"], layout=widgets.Layout(width="100%")
    )
    box.text, box.output, box.update = text_box, output, update
    box.model, box.tokenizer = model, tokenizer
    return box


if __name__ == "__main__":  # usage example: python -m helpers.widgets.spam_probe
    from ..classify import add_classification_head
    from ..model import GPT_CONFIG_124M, GPTModel
    from ..tokenizer import gpt2_tokenizer

    torch.manual_seed(123)
    cfg = {**GPT_CONFIG_124M, "context_length": 64, "emb_dim": 32, "n_heads": 2, "n_layers": 2}
    model = add_classification_head(GPTModel(cfg))  # untrained: the colours are noise
    for token in token_influence(DEFAULT_TEXT, model, gpt2_tokenizer())[:5]:
        print(f"{token.text!r:>12} {token.id:>6} {token.influence * 100:+.2f} points")
