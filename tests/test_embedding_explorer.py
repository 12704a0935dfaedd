"""helpers.widgets.embedding_explorer: PCA, cosine neighbours, figure, HTML and callbacks."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from helpers.tokenizer import SimpleTokenizerV1, build_vocab  # noqa: E402
from helpers.widgets.embedding_explorer import (  # noqa: E402
    DEFAULT_TEXT,
    DEFAULT_WORDS,
    UNTRAINED_TITLE,
    cosine_similarities,
    embedding_explorer,
    lookup_html,
    lookup_rows,
    nearest_neighbours,
    neighbours_html,
    parse_words,
    pca_2d,
    plot_embeddings,
    plot_lookup,
    word_token_ids,
    word_vectors,
)

KING, QUEEN = 5822, 16599  # GPT-2's " king" and " queen"


@pytest.fixture(scope="module")
def planted():
    """A small random (50257, 8) embedding in which " queen" lies right next to " king"."""
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(50257, 8, generator=generator)
    weight[QUEEN] = weight[KING] + 0.01 * torch.randn(8, generator=generator)
    return weight


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _points(fig):
    return fig.axes[0].collections[0].get_offsets()


# --- PCA ---------------------------------------------------------------------------------------


def test_pca_of_points_on_a_line_is_the_line_on_axis_1():
    torch.manual_seed(0)
    direction = torch.randn(10)
    direction /= direction.norm()
    t = torch.arange(7.0)
    points = torch.randn(10) + t[:, None] * direction  # 7 points on a line, anywhere in 10-D
    coords = pca_2d(points)
    assert coords.shape == (7, 2)
    torch.testing.assert_close(coords[:, 1], torch.zeros(7), atol=1e-4, rtol=0)
    torch.testing.assert_close(coords[:, 0].abs(), (t - t.mean()).abs(), atol=1e-4, rtol=0)
    steps = coords[1:, 0] - coords[:-1, 0]
    assert (steps > 0).all() or (steps < 0).all()  # in order along the line


def test_pca_keeps_distances_of_planar_points_and_is_deterministic():
    torch.manual_seed(0)
    points = torch.randn(20, 2) @ torch.tensor([[3.0, 1.0], [0.0, 0.5]])
    coords = pca_2d(points)
    torch.testing.assert_close(
        torch.cdist(coords, coords), torch.cdist(points, points), atol=1e-4, rtol=0
    )
    torch.testing.assert_close(pca_2d(points), coords)
    assert coords[:, 0].var() >= coords[:, 1].var()  # axis 1 has the most variance
    assert pca_2d(torch.ones(1, 5)).tolist() == [[0.0, 0.0]]  # one point: the origin


# --- cosine neighbours ---------------------------------------------------------------------------


def test_planted_neighbour_is_found_first():
    torch.manual_seed(0)
    weight = torch.randn(100, 16)
    weight[42] = 2 * weight[7] + 0.01 * torch.randn(16)  # same direction, other length
    weight[9] = -weight[7]
    found = nearest_neighbours(weight, 7, k=3)
    assert found[0][0] == 42 and found[0][1] == pytest.approx(1, abs=1e-3)
    assert all(token_id != 7 for token_id, _ in found)  # never the token itself
    assert [s for _, s in found] == sorted((s for _, s in found), reverse=True)
    assert 42 not in [i for i, _ in nearest_neighbours(weight, 7, k=3, exclude=[42])]
    everything = nearest_neighbours(weight, 7, k=1000)
    assert len(everything) == 99 and everything[-1][0] == 9  # the opposite vector comes last
    assert everything[-1][1] == pytest.approx(-1, abs=1e-5)
    embedding = torch.nn.Embedding(100, 16)
    embedding.weight.data = weight
    assert nearest_neighbours(embedding, 7, k=3) == found


def test_cosine_handles_zero_rows():
    weight = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 2.0]])
    similarities = cosine_similarities(weight, torch.tensor([3.0, 0.0]))
    assert similarities.tolist() == [1.0, 0.0, 0.0]


# --- words ---------------------------------------------------------------------------------------


def test_words_are_looked_up_mid_sentence(gpt2, planted):
    assert word_token_ids("king", gpt2) == [KING] == gpt2.encode(" king")
    assert word_token_ids("king", gpt2, leading_space=False) == gpt2.encode("king")
    assert parse_words(" king, queen,, king ,New York") == ["king", "queen", "New York"]
    shown, notes = word_vectors(planted, gpt2, ["king", "New York", "<|endoftext|>"])
    assert [w.label for w in shown] == ["king", "New York*"]
    ids = gpt2.encode(" New York")
    assert len(ids) == 2 and shown[1].token_ids == tuple(ids)
    torch.testing.assert_close(shown[1].vector, planted[ids].mean(dim=0))
    assert "2 tokens" in notes[0] and "special token" in notes[1]
    _, notes = word_vectors(torch.randn(100, 4), gpt2, ["king"])
    assert "beyond this embedding's 100 rows" in notes[0]


# --- figure --------------------------------------------------------------------------------------


def test_plot_embeddings(gpt2, planted):
    fig = plot_embeddings(planted, gpt2, DEFAULT_WORDS)
    assert isinstance(fig, Figure) and len(_points(fig)) == len(DEFAULT_WORDS)
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert labels == list(DEFAULT_WORDS)
    assert "8-dimensional" in fig.axes[0].get_title()
    coords = _points(fig)
    # king and queen almost coincide in this embedding, so in the projection too
    assert torch.tensor(coords[0] - coords[1]).norm() < 0.05 * torch.tensor(coords).std()

    with_notes = plot_embeddings(planted, gpt2, ["cat", "New York", "<|endoftext|>"])
    assert [t.get_text() for t in with_notes.axes[0].texts] == ["cat", "New York*"]
    note = with_notes.texts[0].get_text()
    assert "New York* is 2 tokens" in note and "special token" in note

    too_few = plot_embeddings(planted, gpt2, ["cat"])
    assert "at least two words" in too_few.axes[0].texts[0].get_text()
    fig, ax = plt.subplots()
    assert plot_embeddings(planted, gpt2, ["cat", "dog"], ax=ax) is fig


# --- HTML ----------------------------------------------------------------------------------------


def test_neighbours_html(gpt2, planted):
    html = neighbours_html(planted, gpt2, "king", k=5)
    assert html.count("<tr>") == 1 + 5
    first = html.split("<tbody>")[1].split("</tr>")[0]
    assert f">{QUEEN}<" in first and "queen" in first
    assert "\u00b7</span>king" in html  # the query token shown with its leading space
    assert "Type a word" in neighbours_html(planted, gpt2, "  ")
    assert "special token" in neighbours_html(planted, gpt2, "<|endoftext|>")
    assert "beyond this embedding" in neighbours_html(torch.randn(10, 3), gpt2, "king")
    escaped = neighbours_html(planted, gpt2, "<b>x</b>", k=2)
    assert "<b>x" not in escaped and "&lt;b&gt;" in escaped


def test_word_level_tokenizer(planted):
    tokenizer = SimpleTokenizerV1(build_vocab("the king and the queen"))
    assert "cannot be encoded" in neighbours_html(planted[:5], tokenizer, "moon")
    html = neighbours_html(planted[:5], tokenizer, "king", k=2)
    assert html.count("<tr>") == 3


# --- widget --------------------------------------------------------------------------------------


def test_embedding_explorer_callbacks(gpt2, planted):
    ex = embedding_explorer(planted, gpt2, k=4)
    assert len(_points(ex.figure)) == len(DEFAULT_WORDS)
    assert ex.query.value == "king" and ex.neighbours.value.count("<tr>") == 1 + 4
    assert ex.notes.value == ""

    before = ex.figure
    ex.words.value = "cat, dog, New York, <|endoftext|>"
    assert ex.figure is not before and len(_points(ex.figure)) == 3
    assert "2 tokens" in ex.notes.value and "special token" in ex.notes.value
    assert not ex.figure.texts  # the notes are in the HTML, not repeated under the figure

    ex.query.value = "dog"
    assert f">{gpt2.encode(' dog')[0]}<" not in ex.neighbours.value.split("<tbody>")[1]
    ex.k.value = 2
    assert ex.neighbours.value.count("<tr>") == 3
    ex.query.value = ""
    assert "Type a word" in ex.neighbours.value


def test_embedding_explorer_with_a_fresh_embedding_and_default_tokenizer():
    torch.manual_seed(0)
    ex = embedding_explorer(torch.nn.Embedding(50257, 16), words=("one", "two"), query="three")
    assert len(_points(ex.figure)) == 2 and ex.weight.shape == (50257, 16)
    assert "three" in ex.neighbours.value


# --- the lookup (notebook 03) ------------------------------------------------------------------


def test_lookup_rows_are_the_rows_the_ids_pick(gpt2, planted):
    rows, notes = lookup_rows(planted, gpt2, DEFAULT_TEXT)
    ids = gpt2.encode(DEFAULT_TEXT)
    assert notes == [] and [r.token_id for r in rows] == ids and len(ids) == 11
    assert [r.position for r in rows] == list(range(11))
    assert rows[0].text == "The" and rows[3].text == " the"
    torch.testing.assert_close(torch.stack([r.vector for r in rows]), planted[ids])
    assert "special token" in lookup_rows(planted, gpt2, "a <|endoftext|>")[1][0]
    assert "beyond this embedding's 100 rows" in lookup_rows(planted[:100], gpt2, "king")[1][0]


def test_lookup_html_marks_repeated_tokens(gpt2, planted):
    html = lookup_html(planted, gpt2, DEFAULT_TEXT, dims=4)
    assert html.count("<tr>") == 1 + 11
    assert "(11, 8) tensor" in html and "50,257 × 8" in html
    assert html.count("same row as position 3") == 2  # " the" again at positions 6 and 9
    assert html.count("same row as position") == 5  # the, the, man, bit, dog
    assert f"{planted[464][0].item():+.2f}" in html  # 'The' is row 464: its first number shown
    assert "Type a text" in lookup_html(planted, gpt2, "  ")
    assert "special token" in lookup_html(planted, gpt2, "<|endoftext|>")


def test_plot_lookup_draws_one_line_per_token(gpt2, planted):
    fig = plot_lookup(planted, gpt2, DEFAULT_TEXT, dims=5)
    image = fig.axes[0].images[0].get_array()
    assert image.shape == (11, 5)
    assert (image[3] == image[6]).all() and (image[0] != image[3]).any()  # ' the' twice; 'The'
    assert "11 tokens pick 6 different rows" in fig.axes[0].get_title()
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[0] == "0: 'The' → row 464"
    empty = plot_lookup(planted, gpt2, "<|endoftext|>")
    assert "special token" in empty.axes[0].texts[0].get_text()


def test_an_untrained_table_is_labelled_as_random(gpt2, planted):
    fig = plot_embeddings(planted, gpt2, ["cat", "dog"], trained=False)
    assert fig.axes[0].get_title().startswith(UNTRAINED_TITLE)
    assert UNTRAINED_TITLE not in plot_embeddings(planted, gpt2, ["cat", "dog"]).axes[0].get_title()
    assert "chance" in neighbours_html(planted, gpt2, "king", trained=False)
    assert "chance" not in neighbours_html(planted, gpt2, "king")


def test_explorer_lookup_box_and_plain_text_summary(gpt2, planted):
    ex = embedding_explorer(planted, gpt2, k=3, trained=False)
    assert ex.lookup.value.count("<tr>") == 1 + 11
    assert ex.figure.axes[0].get_title().startswith(UNTRAINED_TITLE)
    assert "chance" in ex.neighbours.value
    summary = repr(ex)  # what a reader without a kernel sees instead of "VBox(children=..."
    assert summary.startswith("Embedding explorer, random 50,257 × 8 table: 11 tokens pick rows 464,")
    assert "VBox" not in summary and len(summary) <= 110
    ex.text.value = "king queen"
    assert ex.lookup.value.count("<tr>") == 1 + 2 and "2 tokens pick rows" in repr(ex)
