"""helpers.fused_attention: PyTorch's fused kernel on the teaching MultiHeadAttention's parameters."""

import pytest
import torch
from torch import nn

from helpers.attention import MultiHeadAttention
from helpers.fused_attention import FusedMultiHeadAttention, fused_attention
from helpers.model import GPT_CONFIG_124M, GPTModel

TINY = {**GPT_CONFIG_124M, "vocab_size": 97, "context_length": 12, "emb_dim": 16,
        "n_heads": 4, "n_layers": 2}


def both_ways(module, x, seed=0):
    """(explicit output, fused output), each after torch.manual_seed(seed)."""
    torch.manual_seed(seed)
    explicit = module(x)
    restore = fused_attention(module)
    try:
        torch.manual_seed(seed)
        fused = module(x)
    finally:
        restore()
    return explicit, fused


def test_same_output_without_dropout():
    torch.manual_seed(3)
    x = torch.randn(3, 7, 8)
    for module in (MultiHeadAttention(8, 8, 10, 0.2, num_heads=4).eval(),  # eval: no dropout
                   MultiHeadAttention(8, 8, 10, 0.0, num_heads=4).train()):  # p = 0
        explicit, fused = both_ways(module, x)
        assert not torch.equal(explicit, torch.zeros_like(explicit))
        assert torch.allclose(explicit, fused, atol=1e-6)


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU the fused kernel draws its own dropout")
def test_on_a_cpu_dropout_draws_the_same_random_numbers():
    module = MultiHeadAttention(8, 8, 10, 0.5, num_heads=2).train()
    x = torch.randn(4, 9, 8)
    explicit, fused = both_ways(module, x, seed=5)
    torch.manual_seed(6)
    other_seed = module(x)
    assert not torch.allclose(explicit, other_seed, atol=1e-3)  # dropout really was active
    assert torch.allclose(explicit, fused, atol=1e-6)


def test_switches_every_module_and_back_keeping_parameters_and_state_dict():
    torch.manual_seed(0)
    model = GPTModel(TINY)
    params = [id(p) for p in model.parameters()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    restore = fused_attention(model)
    assert all(type(block.att) is FusedMultiHeadAttention for block in model.trf_blocks)
    assert [id(p) for p in model.parameters()] == params  # the optimizer still holds them
    assert model.state_dict().keys() == state.keys()
    ids = torch.randint(0, 97, (2, 12))
    loss = nn.functional.cross_entropy(model(ids).flatten(0, 1), ids.flatten())
    loss.backward()
    optimizer.step()  # trains the teaching model's own weights
    assert not torch.equal(model.trf_blocks[0].att.W_query.weight, state["trf_blocks.0.att.W_query.weight"])
    restore()
    assert all(type(block.att) is MultiHeadAttention for block in model.trf_blocks)


def test_explicit_switch_and_subclasses_left_alone():
    class Custom(MultiHeadAttention):
        pass

    custom = Custom(4, 4, 6, 0.0, num_heads=2)
    fused_attention(custom)
    assert type(custom) is Custom  # it may compute something else: not ours to replace
    fused = FusedMultiHeadAttention(4, 4, 6, 0.0, num_heads=2)
    restore = fused_attention(fused, enabled=False)
    assert type(fused) is MultiHeadAttention
    restore()
    assert type(fused) is FusedMultiHeadAttention


def test_fused_module_checks_its_input_too():
    fused = FusedMultiHeadAttention(4, 4, 6, 0.0, num_heads=2)
    with pytest.raises(ValueError, match="context_length is 6"):
        fused(torch.randn(1, 7, 4))
