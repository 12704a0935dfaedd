"""Embedding explorer: the lookup of a text's rows, token vectors as points, and which tokens
lie closest (notebook 03 on a random table, notebook 06 on GPT-2's trained one).

Pure functions do the work; the widget only wires text boxes to them:

- ``lookup_rows(weight, tokenizer, text)``          each token of a text, its id and its row
- ``lookup_html(weight, tokenizer, text)``          those rows as a table
- ``plot_lookup(weight, tokenizer, text)``          those rows as a heatmap, one row per token
- ``pca_2d(vectors)``                               (n, d) -> (n, 2) by principal components
- ``nearest_neighbours(weight, token_id, k)``       most similar tokens by cosine similarity
- ``word_vectors(weight, tokenizer, words)``        one vector per word, and notes on the rest
- ``plot_embeddings(weight, tokenizer, words)``     the words' vectors in 2-D, labelled
- ``neighbours_html(weight, tokenizer, word, k)``   a table of a word's nearest tokens
- ``embedding_explorer(weight, tokenizer)``         the interactive version

``weight`` is any (vocab_size, dim) matrix: a fresh ``nn.Embedding`` (random, so any pattern
is chance: pass ``trained=False`` and the figures and tables say so), a trained model's
``tok_emb``, or GPT-2's ``wte``.

Words are looked up as they appear inside a sentence, with a leading space: GPT-2 has one
token for " king" and another for "king" at the start of a text, and the mid-sentence one is
the common one. A word that is several tokens (" Berlin" might be " Ber" + "lin") is shown as
the mean of its tokens' vectors, marked with ``*``.

    >>> weight = torch.nn.Embedding(50257, 256).weight
    >>> nearest_neighbours(weight, 5822, k=3)    # [(id, cosine similarity), ...]
"""

from __future__ import annotations

import html
import textwrap
from dataclasses import dataclass

import torch

from .token_viewer import MUTED_COLOR, TEXT_COLOR, pieces_from_ids, visible_text

DEFAULT_WORDS = (
    "king",
    "queen",
    "man",
    "woman",
    "Paris",
    "France",
    "Berlin",
    "Germany",
    "one",
    "two",
    "three",
    "cat",
    "dog",
)
DEFAULT_TEXT = "The dog bit the man and the man bit the dog"
UNTRAINED_TITLE = "random vectors: no structure yet"
POINT_COLOR = "#2563eb"
MULTI_TOKEN_COLOR = "#ea580c"
BAR_COLOR = "#93c5fd"

_FONT = "font-family:sans-serif; font-size:13px"
_CELL = "padding:1px 12px 1px 0; text-align:left; vertical-align:middle"


def as_weight(weight_or_embedding) -> torch.Tensor:
    """The (vocab_size, dim) matrix of an ``nn.Embedding``, a tensor or an array, as float32."""
    weight = getattr(weight_or_embedding, "weight", weight_or_embedding)
    weight = torch.as_tensor(weight).detach()
    if weight.dim() != 2:
        raise ValueError(
            f"expected a (vocab_size, dim) embedding matrix, got shape {tuple(weight.shape)}"
        )
    return weight.float().cpu()


# --- geometry --------------------------------------------------------------------------------


def _pca(vectors) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 2) coordinates and the share of the variance each of the two axes explains."""
    x = torch.as_tensor(vectors, dtype=torch.float32)
    x = x - x.mean(dim=0, keepdim=True)
    _, singular, vh = torch.linalg.svd(x, full_matrices=False)
    axes = vh[:2]
    # An SVD may return any axis with its sign flipped; make each axis's largest entry positive
    # so the picture does not mirror from one run (or torch version) to the next.
    largest = axes.gather(1, axes.abs().argmax(dim=1, keepdim=True))
    axes = axes * torch.where(largest < 0, -1.0, 1.0)
    coords = x @ axes.T
    variance = singular**2
    explained = variance[:2] / variance.sum() if variance.sum() > 0 else torch.zeros(2)
    if coords.shape[1] < 2:  # one point, or one-dimensional vectors: the second axis is flat
        coords = torch.nn.functional.pad(coords, (0, 2 - coords.shape[1]))
        explained = torch.nn.functional.pad(explained, (0, 2 - explained.shape[0]))
    return coords, explained


def pca_2d(vectors) -> torch.Tensor:
    """Project (n, d) vectors onto their two directions of largest variance: (n, 2).

    Centre the points, take the singular value decomposition X = U S Vᵀ; the first two rows
    of Vᵀ are the principal directions, and X Vᵀ[:2]ᵀ the coordinates along them.
    """
    return _pca(vectors)[0]


def cosine_similarities(weight: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of ``vector`` with every row of ``weight``: (vocab_size,)."""
    weight = torch.as_tensor(weight, dtype=torch.float32)
    vector = torch.as_tensor(vector, dtype=torch.float32)
    rows = torch.nn.functional.normalize(weight, dim=1)  # zero rows stay zero, no division by 0
    return rows @ torch.nn.functional.normalize(vector, dim=0)


def nearest_to_vector(weight, vector, k: int = 8, exclude=()) -> list[tuple[int, float]]:
    """The ``k`` rows of ``weight`` most similar to ``vector``: [(token_id, cosine), ...]."""
    similarities = cosine_similarities(as_weight(weight), vector)
    excluded = [i for i in exclude if 0 <= i < similarities.shape[0]]
    similarities[excluded] = -float("inf")
    k = max(0, min(k, similarities.shape[0] - len(set(excluded))))
    values, ids = similarities.topk(k)
    return [(int(i), float(v)) for i, v in zip(ids, values, strict=True)]


def nearest_neighbours(weight, token_id: int, k: int = 8, exclude=()) -> list[tuple[int, float]]:
    """The ``k`` tokens whose embeddings are most similar to ``token_id``'s by cosine.

    The token itself and the ids in ``exclude`` are left out. Cosine similarity compares
    directions only: 1 = same direction, 0 = unrelated (orthogonal), -1 = opposite.
    """
    weight = as_weight(weight)
    return nearest_to_vector(weight, weight[token_id], k, exclude={int(token_id), *exclude})


# --- words -> vectors --------------------------------------------------------------------------


@dataclass(frozen=True)
class WordVector:
    """A word that can be shown: its token ids and the vector that stands for it."""

    word: str
    token_ids: tuple[int, ...]
    vector: torch.Tensor

    @property
    def label(self) -> str:
        """The word, with ``*`` when it is the mean of several tokens."""
        return self.word + ("*" if len(self.token_ids) > 1 else "")


def parse_words(text: str) -> list[str]:
    """'king, queen,, man ' -> ['king', 'queen', 'man'] (duplicates dropped, order kept)."""
    words = [w.strip() for w in text.split(",")]
    return list(dict.fromkeys(w for w in words if w))


def _encode(text: str, tokenizer) -> list[int]:
    try:
        return list(tokenizer.encode(text, allowed_special=set()))
    except TypeError:  # word-level tokenizers take no special-token options
        return list(tokenizer.encode(text))


def word_token_ids(word: str, tokenizer, leading_space: bool = True) -> list[int]:
    """The ids of ``word`` as it appears inside a sentence (``leading_space``: " king")."""
    text = " " + word if leading_space and not word.startswith(" ") else word
    return _encode(text, tokenizer)


def token_text(token_id: int, tokenizer) -> str:
    """What one token stands for (an incomplete UTF-8 byte shows as �)."""
    try:
        return pieces_from_ids([token_id], tokenizer)[0].text
    except Exception:  # noqa: BLE001 - e.g. an embedding row beyond the tokenizer's vocabulary
        return "(no token)"


def word_vectors(weight, tokenizer, words, leading_space: bool = True):
    """``(shown, notes)``: a ``WordVector`` for each word that can be shown, and a sentence for
    each word that cannot (or is shown as a mean of several tokens)."""
    weight = as_weight(weight)
    shown, notes = [], []
    for word in words:
        try:
            ids = word_token_ids(word, tokenizer, leading_space)
        except Exception as err:  # noqa: BLE001 - an unknown word for a word-level tokenizer
            why = "it is a special token" if "special" in str(err) else type(err).__name__
            notes.append(f"“{word}” cannot be encoded by this tokenizer ({why}).")
            continue
        if not ids:
            continue
        outside = [i for i in ids if not 0 <= i < weight.shape[0]]
        if outside:
            notes.append(
                f"“{word}” has token id {outside[0]}, beyond this embedding's "
                f"{weight.shape[0]:,} rows."
            )
            continue
        if len(ids) > 1:
            parts = " + ".join(repr(token_text(i, tokenizer)) for i in ids)
            notes.append(f"{word}* is {len(ids)} tokens ({parts}): shown as their mean vector.")
        shown.append(WordVector(word, tuple(ids), weight[ids].mean(dim=0)))
    return shown, notes


# --- the lookup itself -----------------------------------------------------------------------


@dataclass(frozen=True)
class LookupRow:
    """One token of a text: where it stands, its id, and the row of the table it picks."""

    position: int
    token_id: int
    text: str
    vector: torch.Tensor


def lookup_rows(weight, tokenizer, text: str) -> tuple[list[LookupRow], list[str]]:
    """``(rows, notes)``: text -> token ids -> ``weight[id]`` for each token, in order; a note
    instead of rows when the text cannot be encoded or has ids beyond the table."""
    weight = as_weight(weight)
    try:
        ids = _encode(text, tokenizer)
    except Exception as err:  # noqa: BLE001 - a special token, or a word a word-level tokenizer lacks
        why = "it contains a special token" if "special" in str(err) else type(err).__name__
        return [], [f"“{text}” cannot be encoded by this tokenizer ({why})."]
    outside = [i for i in ids if not 0 <= i < weight.shape[0]]
    if outside:
        return [], [f"token id {outside[0]} is beyond this embedding's {weight.shape[0]:,} rows."]
    rows = [
        LookupRow(position, i, token_text(i, tokenizer), weight[i])
        for position, i in enumerate(ids)
    ]
    return rows, []


def _numbers(vector: torch.Tensor, dims: int) -> str:
    shown = " ".join(f"{v:+.2f}" for v in vector[:dims].tolist())
    return shown + (" …" if vector.shape[0] > dims else "")


def _table_html(header: str, heads: tuple[str, ...], rows: list[str]) -> str:
    """``header`` above a table with column ``heads`` and the ``<tr>`` ``rows``, on white."""
    head = "".join(f'<th style="{_CELL}; border-bottom:1px solid #e5e7eb">{h}</th>' for h in heads)
    table = (
        f'<table style="{_FONT}; color:{TEXT_COLOR}; border-collapse:collapse">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    return f'<div style="background:#ffffff; padding:4px 6px">{header}{table}</div>'


def lookup_html(weight, tokenizer, text: str, dims: int = 6) -> str:
    """A table of the text's tokens, their ids and the rows they pick (first ``dims`` numbers);
    a repeated token is marked as picking the same row again."""
    text = text.strip()
    if not text:
        return _message("Type a text to see which rows of the table its tokens pick.")
    rows, notes = lookup_rows(weight, tokenizer, text)
    if not rows:
        return notes_html(notes or [f"“{text}” gives no tokens."])
    vocab_size, dim = as_weight(weight).shape
    first_seen: dict[int, int] = {}
    lines = []
    for row in rows:
        again = first_seen.setdefault(row.token_id, row.position)
        same = f"same row as position {again}" if again != row.position else ""
        lines.append(
            f'<tr><td style="{_CELL}; color:{MUTED_COLOR}">{row.position}</td>'
            f'<td style="{_CELL}; font-family:monospace; white-space:pre">'
            f"{visible_text(row.text, show_whitespace=True)}</td>"
            f'<td style="{_CELL}">{row.token_id}</td>'
            f'<td style="{_CELL}; font-family:monospace; white-space:pre">'
            f"{_numbers(row.vector, dims)}</td>"
            f'<td style="{_CELL}; color:{MUTED_COLOR}">{same}</td></tr>'
        )
    header = (
        f'<div style="{_FONT}; color:{TEXT_COLOR}; margin-bottom:3px">{len(rows)} tokens → '
        f"{len(rows)} ids → {len(rows)} rows of the {vocab_size:,} × {dim} table: the embedding "
        f"of this text is a ({len(rows)}, {dim}) tensor "
        f'<span style="color:{MUTED_COLOR}">(first {min(dims, dim)} of {dim} numbers shown)'
        "</span></div>"
    )
    return _table_html(header, ("position", "token", "id = row", "the row's numbers", ""), lines)


def plot_lookup(weight, tokenizer, text: str = DEFAULT_TEXT, dims: int = 16, ax=None):
    """The rows a text's tokens pick, as a heatmap: one line per token, ``dims`` columns.

    A token that appears twice picks the same row twice, so its two lines are identical.
    Returns the ``Figure``.
    """
    import matplotlib.pyplot as plt

    rows, notes = lookup_rows(weight, tokenizer, text)
    if ax is None:
        fig, ax = plt.subplots(figsize=(7.5, 0.9 + 0.42 * max(len(rows), 2)))
    else:
        fig = ax.figure
    if not rows:
        message = notes[0] if notes else "Type a text to see the rows its tokens pick."
        ax.text(0.5, 0.5, message, ha="center", va="center", color=MUTED_COLOR, wrap=True)
        ax.axis("off")
        return fig
    vocab_size, dim = as_weight(weight).shape
    shown = torch.stack([row.vector[:dims] for row in rows])
    limit = float(shown.abs().max()) or 1.0
    image = ax.imshow(shown.numpy(), cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{r.position}: {r.text!r} → row {r.token_id}" for r in rows])
    ax.set_xlabel(f"the row's first {shown.shape[1]} numbers (of {dim})")
    distinct = len({r.token_id for r in rows})
    ax.set_title(
        f"{len(rows)} tokens pick {distinct} different rows of the {vocab_size:,} × {dim} table",
        fontsize=11,
    )
    fig.colorbar(image, ax=ax, fraction=0.03, pad=0.02)
    fig.tight_layout()
    return fig


# --- figure ----------------------------------------------------------------------------------


def plot_embeddings(
    weight,
    tokenizer,
    words=DEFAULT_WORDS,
    ax=None,
    leading_space: bool = True,
    show_notes: bool = True,
    trained: bool = True,
):
    """The words' embedding vectors projected to 2-D by PCA, one labelled point per word.

    Words of several tokens are drawn in orange as the mean of their tokens (``*``); words
    that cannot be shown are listed under the plot (``show_notes``). ``trained=False`` says in
    the title that the points are random. Returns the ``Figure``.
    """
    import matplotlib.pyplot as plt

    shown, notes = word_vectors(weight, tokenizer, words, leading_space)
    notes = notes if show_notes else []
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 5.2 + 0.18 * len(notes)))
    else:
        fig = ax.figure
    if len(shown) < 2:
        ax.text(
            0.5,
            0.5,
            "Type at least two words that can be shown\n(comma-separated) to see a projection.",
            ha="center",
            va="center",
            color=MUTED_COLOR,
            transform=ax.transAxes,
        )
        ax.axis("off")
    else:
        coords, explained = _pca(torch.stack([w.vector for w in shown]))
        colours = [MULTI_TOKEN_COLOR if len(w.token_ids) > 1 else POINT_COLOR for w in shown]
        ax.scatter(coords[:, 0], coords[:, 1], c=colours, s=28, zorder=3)
        for w, (x, y) in zip(shown, coords.tolist(), strict=True):
            ax.annotate(
                w.label,
                (x, y),
                xytext=(4, 3),
                textcoords="offset points",
                fontsize=10,
                color=TEXT_COLOR,
            )
        ax.set_xlabel(f"principal component 1 ({100 * explained[0]:.0f}% of the variance)")
        ax.set_ylabel(f"principal component 2 ({100 * explained[1]:.0f}%)")
        ax.axhline(0, color="#e5e7eb", lw=0.8, zorder=0)
        ax.axvline(0, color="#e5e7eb", lw=0.8, zorder=0)
        ax.margins(0.15)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        dim = as_weight(weight).shape[1]
        title = f"{len(shown)} words' {dim}-dimensional embeddings, projected to 2-D"
        ax.set_title(title if trained else f"{UNTRAINED_TITLE}\n{title}", fontsize=11)
    if notes:  # one line each, under the axes
        lines = [textwrap.shorten(note, 110, placeholder=" …") for note in notes]
        fig.text(0.01, 0.01, "\n".join(lines), fontsize=8, color=MUTED_COLOR, va="bottom")
        inches = fig.get_figheight()
        fig.tight_layout(rect=(0, (0.1 + 0.16 * len(lines)) / inches, 1, 1))
    else:
        fig.tight_layout()
    return fig


# --- HTML ------------------------------------------------------------------------------------


def _message(text: str) -> str:
    return (
        f'<div style="{_FONT}; color:#92400e; background:#fffbeb; border:1px solid #fcd34d; '
        f'border-radius:6px; padding:6px 10px; margin:4px 0">{text}</div>'
    )


def notes_html(notes) -> str:
    """The notes of ``word_vectors`` as one friendly message (empty string when none)."""
    return _message("<br>".join(html.escape(n) for n in notes)) if notes else ""


def neighbours_html(
    weight, tokenizer, word: str, k: int = 8, leading_space: bool = True, trained: bool = True
) -> str:
    """A table of the ``k`` tokens nearest to ``word`` by cosine similarity, with bars;
    ``trained=False`` warns that a random table's neighbours are chance."""
    word = word.strip()
    if not word:
        return _message("Type a word to see its nearest tokens.")
    shown, notes = word_vectors(weight, tokenizer, [word], leading_space)
    if not shown:
        return notes_html(notes or [f"“{word}” gives no tokens."])
    (target,) = shown
    weight = as_weight(weight)
    neighbours = nearest_to_vector(weight, target.vector, k, exclude=target.token_ids)
    rows = []
    for rank, (token_id, similarity) in enumerate(neighbours, start=1):
        bar = max(0.0, similarity) * 120
        rows.append(
            f'<tr><td style="{_CELL}; color:{MUTED_COLOR}">{rank}</td>'
            f'<td style="{_CELL}; font-family:monospace; white-space:pre">'
            f"{visible_text(token_text(token_id, tokenizer), show_whitespace=True)}</td>"
            f'<td style="{_CELL}; color:{MUTED_COLOR}">{token_id}</td>'
            f'<td style="{_CELL}; text-align:right">{similarity:+.3f}</td>'
            f'<td style="{_CELL}"><div style="width:{bar:.0f}px; height:10px; '
            f'background:{BAR_COLOR}; border-radius:2px"></div></td></tr>'
        )
    ids = ", ".join(str(i) for i in target.token_ids)
    query = visible_text("".join(token_text(i, tokenizer) for i in target.token_ids), True)
    what = "the mean of tokens" if len(target.token_ids) > 1 else "token"
    header = (
        f'<div style="{_FONT}; color:{TEXT_COLOR}; margin-bottom:3px">Nearest tokens to '
        f'<code style="white-space:pre">{query}</code> ({what} {ids}) by cosine similarity '
        f'of their embeddings <span style="color:{MUTED_COLOR}">(1 = same direction, '
        "0 = unrelated)</span></div>"
    )
    if not trained:
        header += _message(
            "This table is untrained: its rows are random, so these neighbours are chance, "
            "not meaning. On a trained table (notebook 06) related tokens come first."
        )
    return _table_html(header, ("#", "token", "id", "cosine", ""), rows)


# --- the widget ------------------------------------------------------------------------------


def embedding_explorer(
    weight_or_embedding,
    tokenizer=None,
    words=DEFAULT_WORDS,
    k: int = 8,
    query: str | None = None,
    text: str = DEFAULT_TEXT,
    trained: bool = True,
):
    """Type a text to see the rows its tokens pick; words to see their embeddings in 2-D (PCA);
    a word to see its nearest tokens.

    ``weight_or_embedding``: an ``nn.Embedding`` or a (vocab_size, dim) tensor; ``tokenizer``
    defaults to GPT-2's; ``trained=False`` (a fresh, random table) says on the figure and the
    neighbours that any pattern is chance. The returned box has ``.text``, ``.words`` and
    ``.query`` (Text), ``.k`` (IntSlider), ``.lookup`` (HTML: the rows picked), ``.plot``
    (Output with the scatter), ``.notes`` (HTML: words that could not be shown),
    ``.neighbours`` (HTML), ``.figure`` (the last figure drawn) and ``.update()``.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    from .panel import panel

    if tokenizer is None:
        from ..tokenizer import gpt2_tokenizer

        tokenizer = gpt2_tokenizer()
    weight = as_weight(weight_or_embedding)
    style = {"description_width": "100px"}
    text_box = widgets.Text(
        value=text,
        description="text",
        placeholder="a sentence whose tokens to look up",
        continuous_update=False,
        style=style,
        layout=widgets.Layout(width="95%"),
    )
    words_box = widgets.Text(
        value=", ".join(words),
        description="words",
        placeholder="comma-separated words, e.g. king, queen, man, woman",
        continuous_update=False,
        style=style,
        layout=widgets.Layout(width="95%"),
    )
    query_box = widgets.Text(
        value=query if query is not None else (words[0] if words else ""),
        description="neighbours of",
        continuous_update=False,
        style=style,
        layout=widgets.Layout(width="320px"),
    )
    k_slider = widgets.IntSlider(
        value=k, min=1, max=50, description="how many", continuous_update=False, style=style
    )
    lookup = widgets.HTML()
    plot = widgets.Output()
    notes = widgets.HTML()
    neighbours = widgets.HTML()

    def look_up(change=None):
        lookup.value = lookup_html(weight, tokenizer, text_box.value)

    def draw(change=None):
        chosen = parse_words(words_box.value)
        fig = plot_embeddings(weight, tokenizer, chosen, show_notes=False, trained=trained)
        notes.value = notes_html(word_vectors(weight, tokenizer, chosen)[1])  # notes go in HTML
        box.figure = fig
        plot.clear_output(wait=True)
        with plot:
            display(fig)
        plt.close(fig)  # shown once, in the Output; not again at the end of the cell

    def find(change=None):
        neighbours.value = neighbours_html(
            weight, tokenizer, query_box.value, k_slider.value, trained=trained
        )

    def update(change=None):
        look_up()
        draw()
        find()

    def summary() -> str:
        rows, _ = lookup_rows(weight, tokenizer, text_box.value.strip())
        ids = ", ".join(str(r.token_id) for r in rows)
        kind = "trained" if trained else "random"
        return (
            f"Embedding explorer, {kind} {weight.shape[0]:,} × {weight.shape[1]} table: "
            f"{len(rows)} tokens pick rows {ids}"
        )

    box = panel(
        [
            text_box,
            lookup,
            words_box,
            notes,
            widgets.HBox(
                [plot, widgets.VBox([query_box, k_slider, neighbours])],
                layout=widgets.Layout(flex_flow="row wrap"),  # table below the plot if narrow
            ),
        ],
        summary=summary,
        layout=widgets.Layout(width="100%"),
    )
    text_box.observe(look_up, names="value")
    words_box.observe(draw, names="value")
    query_box.observe(find, names="value")
    k_slider.observe(find, names="value")
    box.text, box.words, box.query, box.k = text_box, words_box, query_box, k_slider
    box.lookup, box.plot, box.notes, box.neighbours = lookup, plot, notes, neighbours
    box.update, box.weight, box.tokenizer = update, weight, tokenizer
    update()
    return box
