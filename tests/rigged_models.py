"""Stand-in models shared by several test modules: rigged classifiers whose outputs are known
exactly, and a small random GPT-2 from transformers for the weight-loading tests."""

import torch
from torch import nn


class CountingClassifier(nn.Module):
    """A rigged model whose answer we know: at each position, the spam logit is a bias plus
    the summed weights of the tokens so far, the not-spam logit 0."""

    def __init__(self, weights: dict, vocab_size: int, context_length: int = 16, bias=-2.0):
        super().__init__()
        self.pos_emb = nn.Embedding(context_length, 1)  # how helpers find the context length
        table = torch.zeros(vocab_size)
        for token_id, weight in weights.items():
            table[token_id] = weight
        self.register_buffer("table", table)
        self.bias = bias

    def forward(self, ids):
        spam = self.table[ids].cumsum(dim=1) + self.bias
        return torch.stack([torch.zeros_like(spam), spam], dim=-1)


def perturbed_hf_gpt2(n_embd: int, n_layer: int, n_head: int, n_positions: int, vocab_size: int):
    """A small random ``transformers.GPT2LMHeadModel`` in eval mode, every parameter nudged: GPT-2
    starts with zero biases and unit layer-norm scales, so a bias or scale mapped to the wrong
    place would otherwise go unnoticed in the logits."""
    import transformers

    config = transformers.GPT2Config(
        n_embd=n_embd, n_layer=n_layer, n_head=n_head, n_positions=n_positions, vocab_size=vocab_size
    )
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return model
