"""helpers.widgets.architecture_explorer: numbers, HTML, figure and the widget's callbacks."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from helpers.model import GPT_CONFIG_124M, gpt2_config  # noqa: E402
from helpers.widgets.architecture_explorer import (  # noqa: E402
    architecture_explorer,
    architecture_html,
    architecture_summary,
    format_bytes,
    format_count,
    format_flops,
    plot_parameter_breakdown,
)

TINY = {
    **GPT_CONFIG_124M,
    "vocab_size": 100,
    "context_length": 16,
    "emb_dim": 32,
    "n_heads": 4,
    "n_layers": 2,
}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_summary_of_the_124m_model():
    untied = architecture_summary(GPT_CONFIG_124M, tied=False)
    assert untied["total"] == untied["total_untied"] == 163_009_536
    assert untied["total_tied"] == 124_412_160 and untied["head_dim"] == 64
    rows = {r["component"]: r for r in untied["components"]}
    assert rows["feed-forward"]["parameters"] == 12 * 4_722_432
    assert rows["attention"]["per_block"] == 2_360_064 and rows["attention"]["copies"] == 12
    assert sum(r["share"] for r in rows.values()) == pytest.approx(1)
    assert untied["memory"] == {
        "float32": 4 * 163_009_536,
        "bfloat16": 2 * 163_009_536,
        "int8": 163_009_536,
    }
    assert untied["training_memory_adamw"] == 16 * 163_009_536
    assert untied["flops_per_token"] == 188_931_072

    tied = architecture_summary(GPT_CONFIG_124M)  # tied is the default
    assert tied["total"] == 124_412_160
    head = next(r for r in tied["components"] if r["component"] == "output head")
    assert head["parameters"] == 0 and "token embedding" in head["note"]
    assert sum(r["share"] for r in tied["components"]) == pytest.approx(1)


def test_formatting():
    assert format_count(163_009_536) == "163.0 M" and format_count(1_557_380_800) == "1.56 B"
    assert format_count(36_864) == "36,864"
    assert format_bytes(4 * 163_009_536) == "621.83 MB" and format_bytes(2048) == "2.0 KB"
    assert format_bytes(4 * 1_637_792_000) == "6.10 GB"
    assert (
        format_flops(188_931_072) == "188.9 MFLOPs" and format_flops(3_110_000_000) == "3.11 GFLOPs"
    )


def test_html_shows_table_memory_and_compute():
    html = architecture_html(GPT_CONFIG_124M, tied=False)
    assert "163,009,536" in html and "124,412,160" in html  # the other count is mentioned too
    assert "621.83 MB" in html and "2.43 GB" in html  # float32 weights; AdamW training
    assert "188.9 MFLOPs" in html and "Kaplan" in html
    assert html.count("<tr") == 1 + 7 + 1 + 3  # header, components, total, facts
    tied = architecture_html(gpt2_config("xl"))
    assert "1,557,380,800" in tied and "(shared)" in tied and "head size 64" in tied


def test_html_friendly_messages():
    message = architecture_html({**GPT_CONFIG_124M, "emb_dim": 770})
    assert "cannot be split into 12 heads" in message and "768 or 780" in message
    assert "n_heads in {1, 2, 5, 7, 10, 11, 14, 22, 35, 55}" in message
    missing = architecture_html({"emb_dim": 8, "n_heads": 2})
    assert "missing" in missing and "vocab_size" in missing


def test_plot_parameter_breakdown():
    fig = plot_parameter_breakdown()
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    count_ax, share_ax = fig.axes
    assert len(count_ax.patches) == len(share_ax.patches) == 6 * 4  # no output head when tied
    labels = [t.get_text() for t in count_ax.get_yticklabels()]
    assert labels == [
        "gpt2-small (124M)",
        "gpt2-medium (355M)",
        "gpt2-large (774M)",
        "gpt2-xl (1558M)",
    ]
    totals = [t.get_text().strip() for t in count_ax.texts]
    assert totals == ["124.4 M", "354.7 M", "773.9 M", "1,557.4 M"]
    untied = plot_parameter_breakdown({"tiny": TINY, "124M": GPT_CONFIG_124M}, tied=False)
    assert len(untied.axes[0].patches) == 7 * 2
    assert untied.axes[0].texts[1].get_text().strip() == "163.0 M"
    widths = [p.get_width() for p in untied.axes[1].patches]
    assert sum(widths) == pytest.approx(200)  # two bars of 100%


def test_widget_presets_and_sliders():
    ex = architecture_explorer()
    assert ex.preset.value == "gpt2-small (124M)" and ex.tied.value is True
    assert "124,412,160" in ex.output.value

    ex.preset.value = "gpt2-xl (1558M)"
    assert (ex.emb_dim.value, ex.layers.value, ex.heads.value) == (1600, 48, 25)
    assert "1,557,380,800" in ex.output.value
    assert ex.config() == gpt2_config("xl")

    ex.layers.value = 10  # by hand: no longer a preset
    assert ex.preset.value == "custom"
    assert f"{architecture_summary(ex.config())['total']:,}" in ex.output.value
    ex.layers.value = 48
    assert ex.preset.value == "gpt2-xl (1558M)"  # back on a preset's values

    ex.tied.value = False
    assert "1,637,792,000" in ex.output.value
    ex.preset.value = "custom"  # choosing "custom" leaves the sliders alone
    assert ex.emb_dim.value == 1600


def test_widget_divisibility_message_and_custom_config():
    ex = architecture_explorer(TINY)
    assert ex.preset.value == "custom" and ex.vocab_size.value == 100
    assert f"{architecture_summary(TINY)['total']:,}" in ex.output.value
    ex.emb_dim.value = 30
    assert "cannot be split into 4 heads" in ex.output.value
    ex.heads.value = 5
    assert "cannot be split" not in ex.output.value and "head size 6" in ex.output.value
    ex.context_length.value = 64
    ex.update()
    assert "context_length=64" in ex.output.value
