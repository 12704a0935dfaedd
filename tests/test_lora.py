"""helpers.lora: the layers, freezing, counting (the book's numbers), merging, saving adapters."""

import json
import math

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from helpers.lora import (
    LinearWithLoRA,
    LoRAError,
    LoRALayer,
    count_trainable_parameters,
    freeze,
    lora_layers,
    lora_parameter_count,
    lora_state_dict,
    mark_only_lora_trainable,
    merge_lora,
    read_lora_info,
    replace_linear_with_lora,
    load_lora_adapters,
    save_lora_adapters,
)
from helpers.checkpoint import gpt_config_of
from helpers.classify import add_classification_head
from helpers.model import GPT_CONFIG_124M, GPTModel, count_parameters, parameter_breakdown

TINY = {
    **GPT_CONFIG_124M,
    "vocab_size": 50,
    "context_length": 8,
    "emb_dim": 16,
    "n_heads": 2,
    "n_layers": 2,
    "drop_rate": 0.0,
    "qkv_bias": True,
}
IDS = torch.tensor([[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]])


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py


def tiny_model(seed: int = 123) -> GPTModel:
    torch.manual_seed(seed)
    return GPTModel(TINY).eval()


def adapted_model(rank: int = 4, alpha: float = 8, seed: int = 123) -> GPTModel:
    """A tiny model with LoRA everywhere and B filled in, so the adapters change the output."""
    model = replace_linear_with_lora(tiny_model(seed), rank, alpha)
    torch.manual_seed(seed + 1)
    with torch.no_grad():
        for layer in lora_layers(model).values():
            layer.lora.B.normal_(std=0.1)
    return model


# --- the layers ------------------------------------------------------------------------------


def test_lora_layer_shapes_init_and_scaling():
    torch.manual_seed(0)
    layer = LoRALayer(6, 3, rank=2, alpha=4)
    assert layer.A.shape == (6, 2) and layer.B.shape == (2, 3)
    assert (layer.rank, layer.alpha, layer.scaling) == (2, 4, 2.0)
    assert torch.count_nonzero(layer.B) == 0 and torch.count_nonzero(layer.A) == 12
    # kaiming_uniform_ with a=√5 on a (6, 2) tensor: bound = 1 / √fan_in, fan_in = 2 columns
    assert layer.A.abs().max() <= 1 / math.sqrt(2)
    x = torch.randn(5, 6)
    assert torch.equal(layer(x), torch.zeros(5, 3))
    with torch.no_grad():
        layer.B.normal_()
    torch.testing.assert_close(layer(x), 2.0 * x @ layer.A @ layer.B)
    assert LoRALayer(768, 768, rank=16, alpha=16).scaling == 1.0  # the paper's alpha / rank


@pytest.mark.parametrize("rank", [0, -1, 2.5, True, "4"])
def test_bad_rank(rank):
    with pytest.raises(ValueError, match="rank"):
        LoRALayer(4, 4, rank=rank, alpha=1)
    with pytest.raises(ValueError, match="rank"):
        replace_linear_with_lora(tiny_model(), rank=rank, alpha=1)


@pytest.mark.parametrize("alpha", [0, -2, float("nan"), None])
def test_bad_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        LoRALayer(4, 4, rank=2, alpha=alpha)
    with pytest.raises(ValueError, match="alpha"):
        LinearWithLoRA(nn.Linear(4, 4), rank=2, alpha=alpha)


def test_replacement_keeps_outputs_while_b_is_zero():
    model = tiny_model()
    with torch.no_grad():
        before = model(IDS)
    base_linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert replace_linear_with_lora(model, rank=4, alpha=8) is model
    layers = lora_layers(model)
    assert len(layers) == len(base_linears) == 6 * 2 + 1  # q, k, v, out, ff × 2 per block; head
    assert "out_head" in layers and "trf_blocks.1.ff.layers.2" in layers
    assert [layer.linear for layer in layers.values()] == base_linears  # wrapped, not copied
    with torch.no_grad():
        assert torch.equal(model(IDS), before)
    # a second call does not wrap the wrappers
    replace_linear_with_lora(model, rank=4, alpha=8)
    assert len(lora_layers(model)) == 13
    assert model.trf_blocks[0].att.W_query.bias is model.trf_blocks[0].att.W_query.linear.bias


def test_a_wrapped_layer_reads_like_its_linear():
    # code that reads a layer's size or weight (a checkpoint's config, a new head) must work
    # on a wrapped model too: that is why LinearWithLoRA has LinearAttributes
    layer = LinearWithLoRA(nn.Linear(5, 3, bias=False), rank=2, alpha=4)
    assert (layer.in_features, layer.out_features) == (5, 3)
    assert layer.weight is layer.linear.weight and layer.bias is None
    assert "rank=2, alpha=4" in repr(layer)  # print(model) shows each adapter's settings
    wrapped = replace_linear_with_lora(tiny_model(), rank=4, alpha=8)
    config = gpt_config_of(wrapped)
    assert config is not None and config == gpt_config_of(tiny_model())
    assert config["qkv_bias"] is True  # read through W_query.linear.bias
    add_classification_head(wrapped)
    assert isinstance(wrapped.out_head, nn.Linear) and wrapped.out_head.in_features == 16


# --- freezing and counting -------------------------------------------------------------------


def test_freezing_in_either_order():
    book_order = replace_linear_with_lora(freeze(tiny_model()), rank=4, alpha=8)
    other_order = mark_only_lora_trainable(replace_linear_with_lora(tiny_model(), 4, 8))
    for model in (book_order, other_order):
        trainable = {name for name, p in model.named_parameters() if p.requires_grad}
        assert trainable == set(lora_state_dict(model))
        assert count_trainable_parameters(model) == lora_parameter_count(TINY, 4)
    assert count_trainable_parameters(freeze(tiny_model())) == 0


def test_parameter_count_by_formula_and_by_model():
    d, v = TINY["emb_dim"], TINY["vocab_size"]
    per_block = 4 * 4 * (d + d) + 4 * (d + 4 * d) + 4 * (4 * d + d)
    assert lora_parameter_count(TINY, 4) == 2 * per_block + 4 * (d + v)
    assert lora_parameter_count(TINY, 4, which="output head") == 4 * (d + v)
    assert lora_parameter_count(TINY, 4, which=["attention"]) == 2 * 4 * 4 * 2 * d
    assert lora_parameter_count(TINY, 4, num_classes=3) == 2 * per_block + 4 * (d + 3)
    model = replace_linear_with_lora(tiny_model(), 4, 8)
    for which in ("all", "attention", "feed-forward", ("attention", "output head")):
        assert lora_parameter_count(model, 4, which) == lora_parameter_count(TINY, 4, which)
    assert lora_parameter_count(tiny_model(), 4) == lora_parameter_count(TINY, 4)  # unwrapped
    with pytest.raises(ValueError, match="Unknown LoRA target"):
        lora_parameter_count(TINY, 4, which="mlp")
    with pytest.raises(ValueError, match="rank"):
        lora_parameter_count(TINY, 0)


def test_the_books_numbers_for_the_124m_spam_classifier():
    """Appendix E: 124,441,346 parameters; rank 16 LoRA everywhere -> 2,666,528 trainable."""
    cfg = {**GPT_CONFIG_124M, "qkv_bias": True}
    by_formula = parameter_breakdown(cfg)
    assert by_formula.total - by_formula.output_head + 768 * 2 + 2 == 124_441_346
    assert lora_parameter_count(cfg, rank=16, num_classes=2) == 2_666_528

    torch.manual_seed(123)
    model = GPTModel(cfg)  # built once for its count; never run
    model.out_head = nn.Linear(768, 2)
    assert count_parameters(model) == 124_441_346
    freeze(model)
    replace_linear_with_lora(model, rank=16, alpha=16)
    assert count_trainable_parameters(model) == 2_666_528
    assert lora_parameter_count(model, rank=16) == 2_666_528


# --- merging ---------------------------------------------------------------------------------


def test_merged_model_computes_the_same():
    model = adapted_model()
    with torch.no_grad():
        adapted = model(IDS)
    assert merge_lora(model) is model
    assert not lora_layers(model) and not any("lora" in name for name in model.state_dict())
    assert set(model.state_dict()) == set(tiny_model().state_dict())  # the plain layout again
    with torch.no_grad():
        merged = model(IDS)
    assert (merged - adapted).abs().max() <= 1e-5
    assert model.trf_blocks[0].att.W_query.bias is not None and model.out_head.bias is None


def test_merged_weight_layout():
    torch.manual_seed(0)
    layer = LinearWithLoRA(nn.Linear(5, 3), rank=2, alpha=6)
    with torch.no_grad():
        layer.lora.B.normal_()
    holder = nn.Sequential(layer)
    merge_lora(holder)
    merged = holder[0]
    assert isinstance(merged, nn.Linear) and merged.weight.shape == (3, 5)
    expected = layer.linear.weight + 3.0 * (layer.lora.A @ layer.lora.B).T
    torch.testing.assert_close(merged.weight, expected)
    assert torch.equal(merged.bias, layer.linear.bias)


# --- training moves only A and B -------------------------------------------------------------


def test_lora_training_lowers_the_loss_and_leaves_the_base_untouched():
    model = replace_linear_with_lora(tiny_model(), rank=4, alpha=8)
    mark_only_lora_trainable(model)
    base = {n: p.detach().clone() for n, p in model.named_parameters() if "lora" not in n}
    torch.manual_seed(0)
    inputs = torch.randint(0, TINY["vocab_size"], (4, 8))
    targets = torch.roll(inputs, shifts=-1, dims=1)  # a pattern to learn: the next token
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-2, weight_decay=0.1)

    def loss() -> torch.Tensor:
        return nn.functional.cross_entropy(model(inputs).flatten(0, 1), targets.flatten())

    model.train()
    first = loss().item()
    for _ in range(30):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    assert loss().item() < 0.8 * first
    for name, param in model.named_parameters():
        if "lora" in name:
            assert param.grad is not None
        else:
            assert param.grad is None and torch.equal(param, base[name]), name


# --- saving and loading adapters -------------------------------------------------------------


def test_adapters_round_trip(tmp_path):
    model = adapted_model(rank=4, alpha=8)
    path = save_lora_adapters(model, tmp_path / "sub" / "adapters.safetensors")
    assert path.is_file() and not list(path.parent.glob("*.tmp"))
    assert set(load_file(str(path))) == set(lora_state_dict(model))  # only A and B
    full = tmp_path / "full.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(full))
    assert path.stat().st_size < 0.5 * full.stat().st_size
    info = read_lora_info(path)
    assert (info["rank"], info["alpha"]) == (4, 8)
    assert info["layers"]["out_head"] == {"rank": 4, "alpha": 8}

    fresh = replace_linear_with_lora(tiny_model(), rank=4, alpha=2)  # other alpha, B = 0
    assert load_lora_adapters(fresh, path)["rank"] == 4
    assert all(layer.lora.alpha == 8 for layer in lora_layers(fresh).values())  # the file's
    with torch.no_grad():
        assert torch.equal(fresh(IDS), model(IDS))
    json.dumps(info)  # plain JSON


def test_adapter_file_that_does_not_fit(tmp_path):
    path = save_lora_adapters(adapted_model(rank=4), tmp_path / "a.safetensors")
    other_rank = replace_linear_with_lora(tiny_model(), rank=2, alpha=8)
    before = {k: v.clone() for k, v in lora_state_dict(other_rank).items()}
    with pytest.raises(LoRAError, match=r"trf_blocks\.0\.att\.W_query\.lora\.A: file \(16, 4\)"):
        load_lora_adapters(other_rank, path)
    assert all(torch.equal(before[k], v) for k, v in lora_state_dict(other_rank).items())

    deeper = replace_linear_with_lora(GPTModel({**TINY, "n_layers": 3}), rank=4, alpha=8)
    with pytest.raises(LoRAError, match=r"missing from the file: trf_blocks\.2\."):
        load_lora_adapters(deeper, path)
    with pytest.raises(LoRAError, match="replace_linear_with_lora"):
        load_lora_adapters(tiny_model(), path)  # no LoRA layers yet
    with pytest.raises(LoRAError, match="no LoRA layers to save"):
        save_lora_adapters(tiny_model(), tmp_path / "b.safetensors")

    foreign = tmp_path / "foreign.safetensors"
    save_file({"x": torch.zeros(2)}, str(foreign))
    with pytest.raises(LoRAError, match="not a LoRA adapter file"):
        load_lora_adapters(other_rank, foreign)
    with pytest.raises(FileNotFoundError):
        load_lora_adapters(other_rank, tmp_path / "missing.safetensors")
