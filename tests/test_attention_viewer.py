"""helpers.widgets.attention_viewer: recorded stages, token labels, figures, widget callbacks."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from torch import nn  # noqa: E402

from helpers.attention import STAGES, CausalAttention, MultiHeadAttention  # noqa: E402
from helpers.tokenizer import SimpleTokenizerV1, build_vocab  # noqa: E402
from helpers.attention import MultiHeadAttentionWrapper  # noqa: E402
from helpers.fused_attention import FusedMultiHeadAttention, fused_attention  # noqa: E402
from helpers.widgets.attention_viewer import (  # noqa: E402
    attention_modules,
    attention_stages,
    attention_viewer,
    context_length,
    plot_attention_heads,
    plot_attention_stages,
    recording_attention,
    token_labels,
)

TEXT = "Your journey starts with one step"
WORDS = ["Your", "journey", "starts", "with", "one", "step"]


class TinyBlock(nn.Module):
    def __init__(self, emb_dim, context_length, num_heads, drop_rate):
        super().__init__()
        self.att = MultiHeadAttention(emb_dim, emb_dim, context_length, drop_rate, num_heads)
        self.ff = nn.Linear(emb_dim, emb_dim)

    def forward(self, x):
        x = x + self.att(x)
        return x + self.ff(x)


class TinyGPT(nn.Module):
    """The shape the viewer expects of a GPT: tok_emb, pos_emb, trf_blocks[i].att, logits."""

    def __init__(self, vocab_size=50257, context_length=16, emb_dim=32, heads=(4, 2), drop=0.1):
        super().__init__()
        self.tok_emb = nn.Embedding(vocab_size, emb_dim)
        self.pos_emb = nn.Embedding(context_length, emb_dim)
        self.trf_blocks = nn.Sequential(
            *[TinyBlock(emb_dim, context_length, h, drop) for h in heads]
        )
        self.out_head = nn.Linear(emb_dim, vocab_size, bias=False)

    def embed(self, idx):
        return self.tok_emb(idx) + self.pos_emb(torch.arange(idx.shape[1]))

    def forward(self, idx):
        return self.out_head(self.trf_blocks(self.embed(idx)))


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return TinyGPT().eval()


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def image_axes(fig):
    return [ax for ax in fig.axes if ax.images and ax.get_visible()]


# --- attention_stages ---------------------------------------------------------------------------


def test_stages_of_a_gpt_are_consistent(tiny, gpt2):
    ids = gpt2.encode(TEXT)
    stages = attention_stages(tiny, ids)
    assert [s["name"] for s in stages] == ["trf_blocks.0.att", "trf_blocks.1.att"]
    assert [s["layer"] for s in stages] == [0, 1]
    assert [tuple(s["weights"].shape) for s in stages] == [(4, 6, 6), (2, 6, 6)]
    above = torch.triu(torch.ones(6, 6, dtype=torch.bool), diagonal=1)
    for s, head_dim in zip(stages, (8, 16), strict=True):
        assert torch.allclose(s["scaled"], s["scores"] / head_dim**0.5)
        assert torch.isneginf(s["masked"][:, above]).all()
        assert torch.isfinite(s["masked"][:, ~above]).all()
        assert torch.allclose(s["weights"], torch.softmax(s["masked"], dim=-1))
        assert torch.allclose(s["weights"].sum(-1), torch.ones(s["weights"].shape[:2]))
        assert (s["weights"][:, above] == 0).all()
        assert torch.equal(s["dropped"], s["weights"])  # eval mode: dropout is off
        assert not s["train"] and s["dropout_p"] == 0.1


def test_recorded_scores_are_the_models_own(tiny, gpt2):
    idx = torch.tensor([gpt2.encode(TEXT)])
    (first, _) = attention_stages(tiny, idx)
    att = tiny.trf_blocks[0].att
    with torch.no_grad():
        x = tiny.embed(idx)
        q, k = att.split_heads(att.W_query(x)), att.split_heads(att.W_key(x))
    assert torch.allclose(first["scores"], (q @ k.transpose(-2, -1))[0], atol=1e-5)


def test_recording_changes_nothing(tiny, gpt2):
    idx = torch.tensor([gpt2.encode(TEXT)])
    with torch.no_grad():
        before = tiny(idx)
    rng = torch.random.get_rng_state()
    attention_stages(tiny, idx, train=True)
    assert not tiny.training  # mode restored
    assert torch.equal(torch.random.get_rng_state(), rng)  # dropout's seed did not leak
    for blk in tiny.trf_blocks:  # every hook removed again
        assert not blk.att._forward_hooks and not blk.att.dropout._forward_hooks
    with torch.no_grad():
        assert torch.allclose(tiny(idx), before, atol=1e-6)


def test_training_mode_shows_seeded_dropout(tiny, gpt2):
    ids = gpt2.encode("one two three four five six seven eight nine ten")
    a = attention_stages(tiny, ids, train=True)
    b = attention_stages(tiny, ids, train=True)
    assert torch.equal(a[0]["dropped"], b[0]["dropped"])  # same seed, same picture
    w, d = a[0]["weights"], a[0]["dropped"]
    assert a[0]["train"] and not torch.equal(w, d)
    kept = d != 0
    assert torch.allclose(d[kept], w[kept] / 0.9)  # survivors are scaled by 1 / (1 - p)
    other = attention_stages(tiny, ids, train=True, seed=7)
    assert not torch.equal(other[0]["dropped"], d)


def test_bare_attention_modules_take_embeddings():
    torch.manual_seed(123)
    mha = MultiHeadAttention(3, 4, 6, 0.0, num_heads=2)
    embeddings = torch.rand(6, 3)
    (stages,) = attention_stages(mha, embeddings)
    assert stages["name"] == "MultiHeadAttention" and stages["weights"].shape == (2, 6, 6)
    ca = CausalAttention(3, 2, 6, 0.0)
    (one_head,) = attention_stages(ca, embeddings.unsqueeze(0))
    assert one_head["weights"].shape == (1, 6, 6)  # a head dimension of 1
    assert context_length(ca) == 6 and context_length(mha) == 6


def test_custom_forward(tiny, gpt2):
    ids = gpt2.encode(TEXT)
    seen = []

    def forward(x):
        seen.append(x.shape)
        return tiny(x[:, :3])  # e.g. a model that needs extra arguments or preprocessing

    stages = attention_stages(tiny, ids, forward=forward)
    assert seen == [(1, 6)] and stages[0]["weights"].shape == (4, 3, 3)


# --- recording_attention: forward hooks, no switches in the attention classes --------------------


def test_recording_finds_every_attention_module_in_forward_order():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.att = MultiHeadAttention(4, 4, 8, 0.0, num_heads=2)
            self.ff = nn.Linear(4, 4)

        def forward(self, x):
            return x + self.ff(x + self.att(x))

    model = nn.Sequential(Block(), Block(), Block()).eval()
    x = torch.rand(1, 5, 4)
    with recording_attention(model) as recorded:
        out = model(x)
    assert list(recorded) == [block.att for block in model] == attention_modules(model)
    assert all(tuple(stages) and stages["masked"].shape == (1, 2, 5, 5) for stages in recorded.values())
    att = model[0].att  # layer 0 sees the raw input
    q, k = att.split_heads(att.W_query(x)), att.split_heads(att.W_key(x))
    assert torch.allclose(recorded[att]["scores"], q @ k.transpose(-2, -1), atol=1e-6)
    with torch.no_grad():
        assert torch.equal(model(x), out)  # hooks gone, nothing changed

    wrapper = MultiHeadAttentionWrapper(3, 2, 6, 0.0, num_heads=3)
    assert attention_modules(wrapper) == list(wrapper.heads)
    with recording_attention(wrapper) as heads:
        wrapper(torch.rand(2, 6, 3))
    assert list(heads) == list(wrapper.heads)
    assert [stages["weights"].shape for stages in heads.values()] == [(2, 6, 6)] * 3


def test_recorded_dropout_is_the_forward_pass_own():
    # in training mode the recorded "dropped" weights are the ones the output was made with
    torch.manual_seed(0)
    mha = MultiHeadAttention(4, 4, 8, 0.5, num_heads=2).train()
    x = torch.rand(2, 6, 4)
    with recording_attention(mha) as recorded:
        out = mha(x)
    dropped = recorded[mha]["dropped"]
    assert (dropped == 0).any()
    values = mha.split_heads(mha.W_value(x))
    assert torch.allclose(out, mha.out_proj(mha.merge_heads(dropped @ values)), atol=1e-6)


def test_recording_removes_its_hooks_after_an_error_and_restores_fused_modules():
    ca = CausalAttention(3, 2, 4, 0.0)
    with pytest.raises(ValueError), recording_attention(ca) as recorded:
        ca(torch.rand(1, 6, 3))  # too long
    assert recorded == {} and not ca._forward_hooks and not ca.dropout._forward_hooks
    fused = FusedMultiHeadAttention(4, 4, 6, 0.0, num_heads=2)
    with recording_attention(fused) as recorded:
        assert type(fused) is MultiHeadAttention  # explicit inside, so dropout is seen
        fused(torch.rand(1, 3, 4))
    assert type(fused) is FusedMultiHeadAttention and set(recorded[fused]) == set(STAGES)
    model = nn.Sequential(MultiHeadAttention(4, 4, 6, 0.0, num_heads=2))
    restore = fused_attention(model)
    assert [s["weights"].shape for s in attention_stages(model, torch.rand(3, 4))] == [(2, 3, 3)]
    assert type(model[0]) is FusedMultiHeadAttention
    restore()


# --- token_labels -------------------------------------------------------------------------------


def test_token_labels(gpt2):
    assert token_labels(gpt2.encode(TEXT), gpt2) == WORDS
    labels = token_labels(gpt2.encode("a\n\n \U0001f44b supercalifragilistic"), gpt2)
    assert labels[0] == "a" and "\u21b5" in labels[1]
    assert labels.count("\ufffd") == 2  # the emoji's two byte tokens: halves of a character
    assert all(len(label) <= 10 for label in labels)
    vocab = build_vocab("Hello, world!")
    simple = SimpleTokenizerV1(vocab)
    assert token_labels(simple.encode("Hello, world!"), simple) == ["Hello", ",", "world", "!"]


# --- figures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dropout_stages():
    torch.manual_seed(3)
    mha = MultiHeadAttention(3, 4, 6, 0.5, num_heads=2)
    return attention_stages(mha, torch.rand(6, 3), train=True)


def test_plot_stages_small(dropout_stages):
    fig = plot_attention_stages(dropout_stages, WORDS, head=1)
    panels = image_axes(fig)
    assert len(panels) == 5 and len(fig.axes) == 7  # five stages, two colourbars
    titles = [ax.get_title() for ax in panels]
    assert [t.split("\n")[0] for t in titles] == [
        "1. scores",
        "2. scaled",
        "3. masked",
        "4. softmax",
        "5. dropout (p=0.5)",
    ]
    assert "\u221ahead_dim = \u00f7 1.41" in titles[1]  # head_dim = 2, read back from the data
    assert [t.get_text() for t in panels[0].get_yticklabels()] == WORDS
    masked = panels[2]
    assert [t.get_text() for t in masked.texts].count("\u2212\u221e") == 15  # 6 * 5 / 2
    assert masked.images[0].get_array().mask.sum() == 15  # drawn as "bad" (grey) cells
    s = dropout_stages[0]
    dropped_out = int(((s["weights"][1] > 0) & (s["dropped"][1] == 0)).sum())
    assert dropped_out > 0
    frames = [p for p in panels[4].patches if isinstance(p, Rectangle)]
    assert len(frames) == dropped_out
    assert "layer 0 (MultiHeadAttention) \u00b7 head 1" in fig._suptitle.get_text()


def test_plot_stages_larger_inputs_use_two_rows(tiny, gpt2):
    ids = gpt2.encode("one two three four five six seven eight nine ten eleven")
    stages = attention_stages(tiny, ids)
    fig = plot_attention_stages(stages, token_labels(ids, gpt2), head=0, layer=1)
    panels = image_axes(fig)
    assert len(panels) == 5 and not any(ax.texts for ax in panels)  # too many to annotate
    rows = sorted({round(ax.get_position().y0, 2) for ax in panels})
    assert len(rows) == 2
    assert "off (eval mode)" in panels[4].get_title()
    assert "layer 1 (trf_blocks.1.att)" in fig._suptitle.get_text()


def test_plot_stages_errors(dropout_stages):
    with pytest.raises(IndexError, match="2 heads"):
        plot_attention_stages(dropout_stages, WORDS, head=2)
    with pytest.raises(IndexError, match="1 layers"):
        plot_attention_stages(dropout_stages, WORDS, layer=1)
    with pytest.raises(ValueError, match="5 token labels for 6 tokens"):
        plot_attention_stages(dropout_stages, WORDS[:5])


def test_plot_heads(tiny, gpt2):
    ids = gpt2.encode(TEXT)
    stages = attention_stages(tiny, ids)
    fig = plot_attention_heads(stages, WORDS, layer=0)
    assert len(image_axes(fig)) == 4 and len(fig.axes) == 5  # four heads, one colourbar
    assert [ax.get_title() for ax in image_axes(fig)] == [f"head {h}" for h in range(4)]
    assert "0.00" not in [t.get_text() for t in image_axes(fig)[0].texts]  # masked: grey "0"
    fig = plot_attention_heads(stages[1], WORDS, stage="masked")  # one layer's dict works too
    assert len(image_axes(fig)) == 2
    torch.manual_seed(0)
    wide = MultiHeadAttention(24, 24, 8, 0.0, num_heads=12)
    fig = plot_attention_heads(attention_stages(wide, torch.rand(5, 24)), list("abcde"))
    assert len(image_axes(fig)) == 12
    assert len({round(ax.get_position().y0, 2) for ax in image_axes(fig)}) == 3  # 3 rows of 4
    with pytest.raises(ValueError, match="stage must be one of"):
        plot_attention_heads(stages, WORDS, stage="softmax")


# --- the widget ---------------------------------------------------------------------------------


def test_viewer_callbacks(tiny, gpt2):
    # over 8 tokens, so the figures have no numbers in the cells: quicker to draw
    viewer = attention_viewer(tiny, gpt2, text=TEXT + " on a long winding road")
    assert viewer.layer.max == 1 and viewer.head.max == 3
    shown = [viewer.output.value]
    assert shown[0].startswith("<img")

    def changed():
        shown.append(viewer.output.value)
        return shown[-1].startswith("<img") and shown[-1] != shown[-2]

    viewer.head.value = 3
    assert changed()
    viewer.layer.value = 1  # this layer has 2 heads: the slider follows
    assert viewer.head.max == 1 and viewer.head.value == 1
    assert changed()
    viewer.view.value = "all heads"
    assert changed() and viewer.head.disabled
    viewer.text.value = "Every effort moves you forward, one step at a time"
    assert changed()
    viewer.dropout.value = True  # training mode: dropout in layer 0 changes layer 1's input
    assert changed()
    viewer.view.value = "stages"
    assert changed() and not viewer.head.disabled
    assert viewer.layer.value == 1 and viewer.head.value == 1  # kept through the changes


def test_viewer_friendly_messages(tiny, gpt2):
    viewer = attention_viewer(tiny, gpt2, text="")
    assert "Type some text" in viewer.output.value and "<img" not in viewer.output.value
    viewer.text.value = " ".join(["word"] * 40)
    assert "40 tokens long" in viewer.output.value and "at most 16" in viewer.output.value
    viewer.layer.value = 1  # moving a slider while a message shows must not fail either
    assert "40 tokens long" in viewer.output.value
    viewer.text.value = TEXT
    assert viewer.output.value.startswith("<img")
    simple = SimpleTokenizerV1(build_vocab(TEXT))
    assert "cannot encode" in attention_viewer(tiny, simple, text="Your trip").output.value


def test_viewer_with_the_real_gpt_model(gpt2):
    from helpers import model as model_module

    cfg = {
        "vocab_size": 50257,
        "context_length": 16,
        "emb_dim": 32,
        "n_heads": 4,
        "n_layers": 2,
        "drop_rate": 0.1,
        "qkv_bias": False,
    }
    torch.manual_seed(123)
    model = model_module.GPTModel(cfg).eval()
    idx = torch.tensor([gpt2.encode(TEXT)])
    with torch.no_grad():
        logits = model(idx)
    stages = attention_stages(model, idx)
    assert [s["name"] for s in stages] == ["trf_blocks.0.att", "trf_blocks.1.att"]
    assert all(s["weights"].shape == (4, 6, 6) for s in stages)
    assert all(set(STAGES) <= set(s) for s in stages)
    with torch.no_grad():
        assert torch.allclose(model(idx), logits, atol=1e-6)
    viewer = attention_viewer(model, gpt2)
    assert viewer.layer.max == 1 and viewer.head.max == 3
    assert viewer.output.value.startswith("<img")
    viewer.text.value = "x " * 17
    assert "at most 16" in viewer.output.value
