"""helpers.widgets.lora_explorer: counts, low-rank approximation, figures, widget callbacks."""

import base64
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from helpers.lora import lora_parameter_count  # noqa: E402
from helpers.model import GPT2_SIZES, gpt2_config  # noqa: E402
from helpers.widgets.lora_explorer import (  # noqa: E402
    cumulative_energy,
    energy_kept,
    example_weight,
    lora_counts,
    lora_counts_html,
    lora_explorer,
    low_rank_approximation,
    plot_low_rank,
    plot_singular_values,
    singular_values,
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# --- counts ----------------------------------------------------------------------------------


def test_counts_match_the_book_and_the_formula():
    rows = lora_counts(16, num_classes=2)
    assert [r["model"] for r in rows] == list(GPT2_SIZES)
    small = rows[0]
    assert (small["full"], small["lora"]) == (124_441_346, 2_666_528)  # appendix E
    assert small["percent"] == pytest.approx(100 * 2_666_528 / 124_441_346)
    for row, size in zip(rows, ("small", "medium", "large", "xl"), strict=True):
        cfg = {**gpt2_config(size), "qkv_bias": True}
        d, n_layers = cfg["emb_dim"], cfg["n_layers"]
        assert row["lora"] == n_layers * 16 * (4 * 2 * d + 2 * 5 * d) + 16 * (d + 2)
        assert row["lora"] == lora_parameter_count(cfg, 16, num_classes=2)
    assert [r["percent"] for r in rows] == sorted((r["percent"] for r in rows), reverse=True)


def test_counts_with_the_vocabulary_head_and_custom_sizes():
    small = lora_counts(8)[0]
    assert small["full"] == 163_009_536 + 3 * 768 * 12  # the book's GPTModel plus qkv biases
    assert small["lora"] == 12 * 8 * 18 * 768 + 8 * (768 + 50_257)
    assert lora_counts(16)[0]["lora"] == 2 * small["lora"]  # linear in the rank
    tiny = lora_counts(2, sizes={"tiny": {"emb_dim": 8, "n_layers": 1, "n_heads": 2}})
    assert len(tiny) == 1 and tiny[0]["lora"] == 2 * 18 * 8 + 2 * (8 + 50_257)


def test_counts_html():
    text = lora_counts_html(16, num_classes=2)
    assert "2,666,528" in text and "124,441,346" in text and "2.14%" in text
    assert "rank r = <b>16</b>" in text and "2-class head" in text
    assert "alpha" not in text  # alpha scales A·B: it changes no count
    assert text.count("<tr") == 1 + 4
    assert "rank r = <b>4</b>" in lora_counts_html(4)
    assert "vocabulary head" in lora_counts_html(4)


# --- low-rank approximation ------------------------------------------------------------------


def test_example_weight_is_seeded_with_decaying_singular_values():
    W = example_weight()
    assert W.shape == (64, 64) and torch.equal(W, example_weight())
    assert not torch.equal(W, example_weight(seed=1))
    s = singular_values(W)
    expected = torch.exp(-torch.arange(64, dtype=torch.float64) / 8.0)
    torch.testing.assert_close(s, expected)


def test_energy_is_monotonic_and_one_at_full_rank():
    W = example_weight()
    energies = [energy_kept(W, r) for r in range(65)]
    assert energies[0] == 0 and energies[-1] == pytest.approx(1)
    assert all(a < b for a, b in zip(energies[:40], energies[1:41], strict=True))
    assert all(a <= b + 1e-12 for a, b in zip(energies, energies[1:], strict=False))
    assert energy_kept(W, 8) == pytest.approx(0.865, abs=1e-3)
    assert energy_kept(W, 100) == pytest.approx(1)  # past full rank: everything
    assert energy_kept(torch.zeros(3, 3), 1) == 1.0


def test_cumulative_energy_is_energy_kept_at_every_rank():
    torch.manual_seed(0)
    for W in (example_weight(), torch.randn(7, 3), torch.nn.Linear(5, 9).weight):
        curve = cumulative_energy(W)
        assert curve.dtype == torch.float64 and len(curve) == min(W.shape) + 1
        expected = torch.tensor([energy_kept(W, r) for r in range(len(curve))], dtype=torch.float64)
        torch.testing.assert_close(curve, expected)
    assert torch.equal(cumulative_energy(torch.zeros(2, 3)), torch.zeros(3))


def test_approximation_error_shrinks_with_rank():
    torch.manual_seed(0)
    W = torch.randn(20, 12)
    errors = [torch.linalg.matrix_norm(W - low_rank_approximation(W, r)).item() for r in range(13)]
    assert all(a > b for a, b in zip(errors, errors[1:], strict=False))
    assert errors[-1] < 1e-10  # full rank gives W back
    for r in (1, 5):  # Eckart-Young: squared relative error = 1 - energy kept
        relative = errors[r] ** 2 / torch.linalg.matrix_norm(W).item() ** 2
        assert relative == pytest.approx(1 - energy_kept(W, r))
        assert torch.linalg.matrix_rank(low_rank_approximation(W, r)).item() == r
    weight = torch.nn.Linear(12, 20).weight  # a parameter with grad works too
    assert low_rank_approximation(weight, 3).shape == (20, 12)
    with pytest.raises(ValueError, match="2-D"):
        low_rank_approximation(torch.zeros(2, 3, 4), 1)
    with pytest.raises(ValueError, match="rank"):
        energy_kept(W, -1)


# --- figures ---------------------------------------------------------------------------------


def test_plot_low_rank():
    W = example_weight()
    fig = plot_low_rank(W, 8)
    assert isinstance(fig, Figure)
    matrix_axes = [ax for ax in fig.axes if ax.images]
    assert len(matrix_axes) == 3 and len(fig.axes) == 4  # three matrices and a colour bar
    limits = {ax.images[0].get_clim() for ax in matrix_axes}
    assert len(limits) == 1  # one shared colour scale
    assert "86.5%" in fig._suptitle.get_text()
    assert "1,024 numbers" in matrix_axes[1].get_title()
    shown = [ax.images[0].get_array() for ax in matrix_axes]
    assert abs(shown[0] - shown[1] - shown[2]).max() < 1e-12


def test_plot_singular_values_marks_the_rank():
    fig = plot_singular_values(example_weight(), 8)
    (ax,) = fig.axes
    curve = ax.lines[0].get_ydata()
    assert len(curve) == 65 and curve[0] == 0 and curve[-1] == pytest.approx(100)
    assert ax.texts[0].get_text() == "rank 8: 86.5%"
    assert len(plot_singular_values(example_weight()).axes[0].texts) == 0


# --- the widget ------------------------------------------------------------------------------


def _images(html: str) -> list[bytes]:
    return [base64.b64decode(d) for d in re.findall(r"base64,([A-Za-z0-9+/=]+)", html)]


def test_widget_callbacks_update_outputs():
    ex = lora_explorer()
    assert (ex.rank.value, ex.rank.max) == (8, 64)
    assert not hasattr(ex, "alpha")  # no slider that would change nothing drawn
    assert ex.head.value == "vocabulary head (text)" and ex.head.index == 0
    assert "rank r = <b>8</b>" in ex.table.value and "1.06%" in ex.table.value
    first = _images(ex.figure.value)
    assert len(first) == 2 and all(png.startswith(b"\x89PNG") for png in first)

    ex.rank.value = 16
    assert "rank r = <b>16</b>" in ex.table.value
    assert f"{lora_counts(16)[0]['lora']:,}" in ex.table.value
    assert _images(ex.figure.value) != first

    figure_before = ex.figure.value
    ex.head.value = "2-class head (spam classifier)"  # the counts change, the matrix does not
    assert "2,666,528" in ex.table.value and "124,441,346" in ex.table.value
    assert ex.figure.value == figure_before
    ex.update()
    assert len(_images(ex.figure.value)) == 2


def test_widget_with_a_small_real_weight():
    torch.manual_seed(0)
    weight = torch.nn.Linear(12, 5).weight  # (out, in) = 5 × 12, a parameter with grad
    ex = lora_explorer(weight, rank=8)
    assert ex.rank.max == 5 and ex.rank.value == 5  # no more rank than the matrix has
    assert ex.weight.shape == (5, 12) and "rank r = <b>5</b>" in ex.table.value
    assert repr(ex).startswith("LoRA explorer: r=5:") and "100% of W's energy" in repr(ex)
