"""Token viewer: see how a tokenizer cuts text into tokens (notebook 01).

Pure functions do the work; the widget only wires a text box and a checkbox to them:

- ``token_pieces(text, tokenizer)``   text -> list of ``TokenPiece`` (ids, bytes, display text)
- ``tokens_html(pieces)``             coloured boxes, id and bytes on hover (the first 2,000)
- ``compare_html(text, tokenizers)``  one row per tokenizer: count, chars per token, tokens
- ``plot_tokens(text, tokenizer)``    the same as a matplotlib figure (for readers on GitHub)
- ``token_viewer(text)``              the interactive version

Works with ``tiktoken`` encodings and ``BPETokenizer`` (byte-level: each token is some bytes)
and with ``SimpleTokenizerV1/V2`` (word-level: each token is a word from the vocabulary).

    >>> from helpers.tokenizer import gpt2_tokenizer
    >>> [p.ids for p in token_pieces("Hello, world!", gpt2_tokenizer())]
    [(15496,), (11,), (995,), (0,)]
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from .panel import panel, plural, quoted_summary

# Soft colours, readable with dark text on a white page (and kept light in dark themes,
# because every box sets its own text colour).
PALETTE = (
    "#fde68a",  # yellow
    "#bbf7d0",  # green
    "#bfdbfe",  # blue
    "#fecaca",  # red
    "#ddd6fe",  # violet
    "#fed7aa",  # orange
    "#a5f3fc",  # cyan
    "#f5d0fe",  # pink
)
TEXT_COLOR = "#111827"
MUTED_COLOR = "#6b7280"
WHITESPACE_MARKS = {" ": "\u00b7", "\n": "\u21b5", "\t": "\u2192"}  # · ↵ →

_BOX_STYLE = "border-radius:3px; padding:1px 0; margin:0 1px 0 0; color:" + TEXT_COLOR
_CONTAINER_STYLE = (
    "font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:14px; "
    "line-height:1.9; white-space:pre-wrap; word-break:break-word; tab-size:4; "
    f"color:{TEXT_COLOR}; background:#ffffff; padding:6px 8px; border:1px solid #e5e7eb; "
    "border-radius:6px"
)
_NOTE_STYLE = f"font-family:sans-serif; font-size:13px; color:{MUTED_COLOR}; margin:2px 0 6px 0"
# A browser slows to a crawl over tens of thousands of coloured boxes (a pasted book), so the
# HTML draws at most this many tokens; the counts still cover the whole text.
MAX_DRAWN_TOKENS = 2000
_DOT = " \u00b7 "


@dataclass(frozen=True)
class TokenPiece:
    """One coloured box: usually one token, several when they only form a character together.

    ``ids``: the token ids (one, or several for e.g. an emoji that GPT-2 splits into bytes);
    ``raw``: their bytes, or ``None`` for word-level tokenizers (their tokens are vocabulary
    words, not bytes); ``text``: what to show.
    """

    ids: tuple[int, ...]
    raw: bytes | None
    text: str


def encode(text: str, tokenizer) -> list[int]:
    """``tokenizer.encode(text)``, letting special tokens such as ``<|endoftext|>`` through."""
    try:
        return list(tokenizer.encode(text, allowed_special="all"))
    except TypeError:  # tokenizers without special-token options (SimpleTokenizerV1/V2)
        return list(tokenizer.encode(text))


def token_pieces(text: str, tokenizer) -> list[TokenPiece]:
    """Encode ``text`` and return what each token stands for, ready to display."""
    return pieces_from_ids(encode(text, tokenizer), tokenizer)


def pieces_from_ids(ids, tokenizer) -> list[TokenPiece]:
    """The ``TokenPiece`` list for ids already encoded (see ``token_pieces``).

    Byte-level tokenizers (``decode_single_token_bytes``): a token whose bytes are not valid
    UTF-8 on their own (part of an emoji or a CJK character) is merged with the following ones
    until the bytes decode, so the box shows the character and lists all its ids.
    Word-level tokenizers (``int_to_str``): one box per word.
    """
    ids = [int(i) for i in ids]
    if hasattr(tokenizer, "decode_single_token_bytes"):
        return _byte_pieces(ids, tokenizer.decode_single_token_bytes)
    if hasattr(tokenizer, "int_to_str"):
        return [TokenPiece((i,), None, str(tokenizer.int_to_str[i])) for i in ids]
    # any other tokenizer with decode(): treat each token's text as its bytes
    return _byte_pieces(ids, lambda i: tokenizer.decode([i]).encode("utf-8"))


def _byte_pieces(ids: list[int], token_bytes) -> list[TokenPiece]:
    pieces: list[TokenPiece] = []
    pending_ids: list[int] = []
    pending = b""
    for i in ids:
        pending_ids.append(i)
        pending += token_bytes(i)
        try:
            text = pending.decode("utf-8")
        except UnicodeDecodeError:
            continue  # an incomplete character: wait for the next token's bytes
        pieces.append(TokenPiece(tuple(pending_ids), pending, text))
        pending_ids, pending = [], b""
    if pending_ids:  # only possible for ids that did not come from encoding a str
        pieces.append(TokenPiece(tuple(pending_ids), pending, pending.decode("utf-8", "replace")))
    return pieces


def color(index: int) -> str:
    """The palette colour of the ``index``-th box (the palette cycles)."""
    return PALETTE[index % len(PALETTE)]


def piece_title(piece: TokenPiece) -> str:
    """Hover text: ``id 11 · b','``, or ``ids 41840, 233 · b'\\xf0\\x9f\\x91\\x8b'``."""
    label = "id" if len(piece.ids) == 1 else "ids"
    ids = ", ".join(str(i) for i in piece.ids)
    shown = repr(piece.raw) if piece.raw is not None else repr(piece.text)
    return f"{label} {ids} \u00b7 {shown}"


def visible_text(text: str, show_whitespace: bool = False, newlines: bool = False) -> str:
    """HTML-escaped ``text``; with ``show_whitespace``, spaces as ·, newlines as ↵, tabs as →.

    ``newlines=True`` marks only newlines (a box holding just a line break is invisible
    otherwise). Marks are grey so they don't read as part of the text; real line breaks stay.
    """
    marks = WHITESPACE_MARKS if show_whitespace else ({"\n": "\u21b5"} if newlines else {})
    if not marks:
        return html.escape(text)
    out = []
    for ch in text:
        if ch in marks:
            mark = f'<span style="color:{MUTED_COLOR}">{marks[ch]}</span>'
            out.append(mark + "\n" if ch == "\n" else mark)
        else:
            out.append(html.escape(ch))
    return "".join(out)


def num_tokens(pieces: list[TokenPiece]) -> int:
    """How many tokens the pieces hold (a piece can hold several)."""
    return sum(len(p.ids) for p in pieces)


def first_tokens(pieces: list[TokenPiece], max_tokens: int) -> list[TokenPiece]:
    """The leading pieces that hold at most ``max_tokens`` tokens in all."""
    shown, total = [], 0
    for piece in pieces:
        total += len(piece.ids)
        if total > max_tokens:
            break
        shown.append(piece)
    return shown


def _shown_note(shown: list[TokenPiece], pieces: list[TokenPiece]) -> str:
    """``showing the first 2,000 of 25,310 tokens``, or nothing when every piece is shown."""
    if len(shown) == len(pieces):
        return ""
    return f"showing the first {num_tokens(shown):,} of {num_tokens(pieces):,} tokens"


def _count_note(pieces: list[TokenPiece]) -> str:
    note = plural(num_tokens(pieces), "token")
    merged = [p for p in pieces if len(p.ids) > 1]
    if merged:
        note += (
            f" \u00b7 {len(merged)} box{'es' if len(merged) != 1 else ''} hold several tokens: "
            "their bytes only make a character together"
        )
    return note


def tokens_html(
    pieces: list[TokenPiece],
    show_whitespace: bool = False,
    count: bool = True,
    max_tokens: int = MAX_DRAWN_TOKENS,
) -> str:
    """Coloured boxes, one per piece, with the id(s) and bytes on hover; a token count above.

    Word-level pieces (``raw is None``) are separated by a space, as the tokenizer's ``decode``
    would join them. Only the first ``max_tokens`` tokens are drawn, with a note saying so.
    """
    shown = first_tokens(pieces, max_tokens)
    spans = []
    for index, piece in enumerate(shown):
        spans.append(
            f'<span title="{html.escape(piece_title(piece))}" '
            f'style="background:{color(index)}; {_BOX_STYLE}">'
            f"{visible_text(piece.text, show_whitespace)}</span>"
        )
    words = bool(pieces) and all(p.raw is None for p in pieces)
    body = (" " if words else "").join(spans)
    if not pieces:
        body = f'<span style="color:{MUTED_COLOR}">(no tokens: type some text)</span>'
    notes = [_count_note(pieces)] if count else []
    notes += [note for note in (_shown_note(shown, pieces),) if note]
    note = f'<div style="{_NOTE_STYLE}">{_DOT.join(notes)}</div>' if notes else ""
    return f'<div>{note}<div style="{_CONTAINER_STYLE}">{body}</div></div>'


def compare_html(text: str, tokenizers: dict, show_whitespace: bool = False) -> str:
    """One row per tokenizer: name, token count, characters per token, coloured tokens.

    A tokenizer that cannot encode the text (SimpleTokenizerV1 meeting an unknown word) gets a
    row saying so instead of an exception.
    """
    return _compare_html(text, encode_all(text, tokenizers), show_whitespace)


def encode_all(text: str, tokenizers: dict) -> dict:
    """``{name: token_pieces(text, tokenizer)}``, or the exception for a tokenizer that fails."""
    results = {}
    for name, tokenizer in tokenizers.items():
        try:
            results[name] = token_pieces(text, tokenizer)
        except Exception as err:  # noqa: BLE001 - shown to the user, not raised in a widget
            results[name] = err
    return results


def _compare_html(text: str, results: dict, show_whitespace: bool) -> str:
    cell = "padding:4px 8px; vertical-align:top; text-align:left; border-bottom:1px solid #e5e7eb"
    head = "".join(
        f'<th style="{cell}">{h}</th>' for h in ("tokenizer", "tokens", "chars / token", "")
    )
    rows = []
    for name, pieces in results.items():
        if isinstance(pieces, Exception):
            err = pieces
            message = f"cannot encode this text: {type(err).__name__}: {err}"
            rows.append(
                f'<tr><td style="{cell}"><b>{html.escape(str(name))}</b></td>'
                f'<td style="{cell}">\u2013</td><td style="{cell}">\u2013</td>'
                f'<td style="{cell}; color:#b91c1c">{html.escape(message)}</td></tr>'
            )
            continue
        n = num_tokens(pieces)
        ratio = f"{len(text) / n:.2f}" if n else "\u2013"
        rows.append(
            f'<tr><td style="{cell}"><b>{html.escape(str(name))}</b></td>'
            f'<td style="{cell}">{n:,}</td><td style="{cell}">{ratio}</td>'
            f'<td style="{cell}">{tokens_html(pieces, show_whitespace, count=False)}</td></tr>'
        )
    return (
        f'<table style="border-collapse:collapse; font-family:sans-serif; font-size:13px; '
        f'color:{TEXT_COLOR}; background:#ffffff">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


# --- static figure -------------------------------------------------------------------------


def font_has_glyphs():
    """A function telling whether matplotlib's monospace font can draw a character."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    font = FT2Font(font_manager.findfont(font_manager.FontProperties(family="monospace")))
    return lambda ch: ch.isspace() or font.get_char_index(ord(ch)) != 0


def _figure_label(piece: TokenPiece, drawable) -> str:
    text = "".join(WHITESPACE_MARKS.get(ch, ch) for ch in piece.text)
    if all(drawable(ch) for ch in text):
        return text
    # the font has no glyph (emoji, most CJK): name the characters instead of drawing boxes
    return " ".join(ch if drawable(ch) else f"U+{ord(ch):04X}" for ch in text)


def plot_tokens(
    text: str,
    tokenizer,
    ax=None,
    max_tokens: int = 60,
    chars_per_row: int = 64,
    title: str | None = None,
):
    """The token boxes as a matplotlib figure, each with its id(s) underneath.

    For readers without a kernel (GitHub), where the widget does not render. Whitespace is
    shown as · ↵ →; a newline also starts a new row. Shows the first ``max_tokens`` tokens.
    Returns the ``Figure``; one patch per box. With ``ax``, draws into that axes instead.
    In a notebook, end the cell with ``;`` so the figure shows once.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    all_pieces = token_pieces(text, tokenizer)
    pieces = first_tokens(all_pieces, max_tokens)
    shown_tokens, total = num_tokens(pieces), num_tokens(all_pieces)
    drawable = font_has_glyphs()

    # lay out in character units: x in characters, one row = 1 unit of height
    layout, x, row = [], 0.0, 0
    for index, piece in enumerate(pieces):
        label = _figure_label(piece, drawable)
        id_label = " ".join(str(i) for i in piece.ids)
        width = max(len(label), 0.85 * len(id_label), 1) + 0.6
        if x > 0 and x + width > chars_per_row:
            x, row = 0.0, row + 1
        layout.append((index, label, id_label, x, row, width))
        x += width + 0.25
        if piece.text.endswith("\n"):
            x, row = 0.0, row + 1
    rows = (layout[-1][4] + 1) if layout else 1
    row_height = 1.9  # box (1 unit) + the id line + a gap
    top = 1.9  # room for the heading above the first row
    bottom = -(rows - 1) * row_height - 1.1
    fontsize = 12
    char_inches = 0.602 * fontsize / 72  # advance width of DejaVu Sans Mono
    unit_inches = 0.27  # height of one box
    if ax is None:
        width = chars_per_row + 0.6
        fig = plt.figure(figsize=(width * char_inches, (top - bottom) * unit_inches))
        ax = fig.add_axes((0, 0, 1, 1))
    else:
        fig = ax.figure
    for index, label, id_label, x0, r, width in layout:
        y = -r * row_height
        ax.add_patch(
            FancyBboxPatch(
                (x0, y),
                width,
                1.0,
                boxstyle="round,pad=0,rounding_size=0.25",
                facecolor=color(index),
                edgecolor="none",
            )
        )
        ax.text(
            x0 + width / 2,
            y + 0.5,
            label,
            ha="center",
            va="center_baseline",
            family="monospace",
            fontsize=fontsize,
            color=TEXT_COLOR,
        )
        ax.text(
            x0 + width / 2,
            y - 0.15,
            id_label,
            ha="center",
            va="top",
            family="monospace",
            fontsize=fontsize * 0.65,
            color=MUTED_COLOR,
        )
    heading = title if title is not None else f"{total:,} tokens"
    if len(pieces) < len(all_pieces):
        heading += f" (first {shown_tokens} shown)"
    ax.text(0, 1.5, heading, ha="left", va="center", fontsize=fontsize * 0.8, color=MUTED_COLOR)
    ax.set_xlim(-0.3, chars_per_row + 0.3)
    ax.set_ylim(bottom, top)
    ax.axis("off")
    return fig


# --- the widget ----------------------------------------------------------------------------


def default_tokenizers() -> dict:
    """``{"GPT-2": gpt2_tokenizer()}`` (built offline from the local BPE files)."""
    from ..tokenizer import gpt2_tokenizer

    return {"GPT-2": gpt2_tokenizer()}


def _as_dict(tokenizers) -> dict:
    if tokenizers is None:
        return default_tokenizers()
    if isinstance(tokenizers, dict):
        return dict(tokenizers)
    return {getattr(tokenizers, "name", type(tokenizers).__name__): tokenizers}


def viewer_html(text: str, tokenizers: dict, show_whitespace: bool = False) -> str:
    """What the widget shows: ``tokens_html`` for one tokenizer, ``compare_html`` for several."""
    return _viewer_html(text, encode_all(text, tokenizers), show_whitespace)


def _viewer_html(text: str, results: dict, show_whitespace: bool) -> str:
    only = next(iter(results.values())) if len(results) == 1 else None
    if only is not None and not isinstance(only, Exception):
        return tokens_html(only, show_whitespace)
    return _compare_html(text, results, show_whitespace)  # it explains an error in its row


def viewer_summary(text: str, results: dict) -> str:
    """One line for readers without a kernel: the text and its token count per tokenizer."""
    if not text.strip():
        return "Token viewer: no text to tokenize"
    counts = [
        f"{name} cannot encode it" if isinstance(p, Exception) else f"{name} {num_tokens(p):,}"
        for name, p in results.items()
    ]
    if len(results) == 1 and not isinstance(only := next(iter(results.values())), Exception):
        rest = f" is {plural(num_tokens(only), 'token')} ({next(iter(results))})"
    else:
        rest = " in tokens: " + ", ".join(counts)
    return quoted_summary("Token viewer", text, rest)


def token_viewer(
    text: str = "Hello, world! Tokenizers split text into pieces \U0001f44b",
    tokenizers=None,
):
    """A text box and a "show whitespace" checkbox over coloured tokens; hover for ids.

    ``tokenizers``: one tokenizer, or ``{name: tokenizer}`` to compare several side by side
    (default: GPT-2's). The returned ``VBox`` has ``.text`` (Textarea), ``.whitespace``
    (Checkbox), ``.output`` (HTML) and ``.update()`` (re-render), for scripts and tests; its
    ``repr`` is one line saying how many tokens the text is. At most 2,000 tokens are drawn.
    """
    import ipywidgets as widgets

    tokenizers = _as_dict(tokenizers)
    text_box = widgets.Textarea(
        value=text,
        placeholder="Type text to tokenize",
        layout=widgets.Layout(width="100%", height="5em"),
    )
    whitespace = widgets.Checkbox(value=False, description="show whitespace", indent=False)
    output = widgets.HTML()
    state = {"summary": ""}

    def update(change=None):
        results = encode_all(text_box.value, tokenizers)
        output.value = _viewer_html(text_box.value, results, whitespace.value)
        state["summary"] = viewer_summary(text_box.value, results)

    text_box.observe(update, names="value")
    whitespace.observe(update, names="value")
    update()

    box = panel(
        [text_box, whitespace, output],
        summary=lambda: state["summary"],
        layout=widgets.Layout(width="100%"),
    )
    box.text, box.whitespace, box.output, box.update = text_box, whitespace, output, update
    box.tokenizers = tokenizers
    return box
