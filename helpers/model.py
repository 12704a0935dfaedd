"""Phase 05, the GPT architecture. So far: the model configurations the notebooks refer to.

The keys are the book's, so a config written for the book's ``GPTModel`` works here unchanged.
"""

GPT_CONFIG_124M = {
    "vocab_size": 50257,  # GPT-2's BPE vocabulary: 50,000 merges + 256 bytes + <|endoftext|>
    "context_length": 1024,  # the most tokens the model can look at in one pass
    "emb_dim": 768,  # width of every token's vector through the whole model
    "n_heads": 12,  # attention heads per layer (768 / 12 = 64 dimensions each)
    "n_layers": 12,  # transformer blocks stacked on top of each other
    "drop_rate": 0.1,  # dropout probability while training
    "qkv_bias": False,  # bias in the query/key/value projections (GPT-2's weights have one)
}

# The larger GPT-2 sizes differ only in width, depth and heads.
GPT2_SIZES = {
    "gpt2-small (124M)": {"emb_dim": 768, "n_layers": 12, "n_heads": 12},
    "gpt2-medium (355M)": {"emb_dim": 1024, "n_layers": 24, "n_heads": 16},
    "gpt2-large (774M)": {"emb_dim": 1280, "n_layers": 36, "n_heads": 20},
    "gpt2-xl (1558M)": {"emb_dim": 1600, "n_layers": 48, "n_heads": 25},
}

CONFIG_FIELDS = {
    "vocab_size": "how many different tokens the model knows; the size of its first and last layer",
    "context_length": "the longest input, in tokens; positions beyond it have no embedding",
    "emb_dim": "the embedding (hidden) dimension: each token is a vector of this many numbers",
    "n_heads": "attention heads per block; each looks at the sequence in its own subspace",
    "n_layers": "transformer blocks; more layers, more steps of refinement",
    "drop_rate": "share of activations zeroed at random while training, against overfitting",
    "qkv_bias": "whether the query, key and value projections add a learnt bias vector",
}


def gpt2_config(size: str) -> dict:
    """``GPT_CONFIG_124M`` resized to one of ``GPT2_SIZES`` (short names like "medium" work)."""
    matches = [name for name in GPT2_SIZES if name == size or name.startswith(f"gpt2-{size}")]
    if len(matches) != 1:
        raise ValueError(f"Unknown GPT-2 size {size!r}; choose one of {', '.join(GPT2_SIZES)}.")
    return {**GPT_CONFIG_124M, **GPT2_SIZES[matches[0]]}
