"""Greedy decoding speed: our ``generate`` with and without the KV cache, against peers.

    python benchmarks/generation.py            # 124M config, 200 new tokens (~8 min on 2 cores)
    python benchmarks/generation.py --quick    # a tiny config, seconds (a smoke test)

The same random 124M-config weights (seed 123, eval mode, dropout 0) go into every contender:

- ours, ``helpers.generate.generate`` with the KV cache (the default), the same with the
  model's own layers instead of ``decoding_kernels`` (fused LayerNorm and GELU, products
  split over the cores), and with ``use_cache=False`` (every step recomputes the sequence);
- the book's ``generate_text_simple`` and ``GPTModel`` (PyPI package ``llms-from-scratch``,
  ``llms_from_scratch.ch04``), loaded from our state dict (the names are the same);
- Hugging Face ``transformers``: ``GPT2LMHeadModel.generate`` (greedy, with its cache), the
  weights mapped to GPT-2's layout (the inverse of ``helpers.weights``).

Before timing, the prompt's logits of each peer are compared with ours; after, every
contender's tokens must equal ours. A 10-token prompt, 200 new tokens, batch 1.

At batch 1 a cached decoding step is a chain of matrix-vector products: every weight is read
from memory once and used for two floating-point operations, so the step is limited by memory
bandwidth, not arithmetic. The report therefore also gives the *memory-bound ceiling*: the
read bandwidth measured here (a sum over a tensor far larger than the caches) over the bytes
of weights one step must read, in tokens/s, and each contender's speed as a share of it.
"""

from __future__ import annotations

import argparse
import importlib
from contextlib import nullcontext
from unittest import mock

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    import common  # noqa: F401  (puts the repository root on sys.path)

import torch
from torch import nn

from benchmarks.common import (
    alternate,
    best_seconds,
    environment_line,
    markdown_table,
    median_ratio,
    pick_device,
    verdict,
    write_report,
)
import helpers.kv_cache
from helpers.generate import generate
from helpers.model import GPT_CONFIG_124M, GPTModel

SEED = 123
PROMPT_TOKENS = 10
FULL = {"cfg": {**GPT_CONFIG_124M, "drop_rate": 0.0}, "new_tokens": 200, "rounds": 3}
# quick: a small model, so the whole run takes seconds (for tests and a first look)
QUICK_CFG = {**GPT_CONFIG_124M, "vocab_size": 1000, "context_length": 64, "emb_dim": 64,
             "n_heads": 4, "n_layers": 2, "drop_rate": 0.0}
QUICK = {"cfg": QUICK_CFG, "new_tokens": 20, "rounds": 3}

OURS_CACHE, OURS_PLAIN = "ours, KV cache", "ours, no cache"
OURS_OWN_LAYERS = "ours, KV cache, model's own layers"
BOOK = "book generate_text_simple"
HF = "transformers generate"
TARGETS = {(OURS_CACHE, OURS_PLAIN): 5.0, (OURS_CACHE, HF): 1.5}


# ---------------------------------------------------------------------------------------------
# The same weights in every model
# ---------------------------------------------------------------------------------------------


def book_models(state_dict: dict, cfg: dict, device) -> dict:
    """The book's GPTModel with our weights, and its generation loop.

    (The package also ships a bonus KV-cache GPT, ``llms_from_scratch.kv_cache.gpt2``; in
    version 1.0.19 its mask fails for a single new token, so it is not a contender here.)
    """
    ch04 = importlib.import_module("llms_from_scratch.ch04")
    book = ch04.GPTModel(cfg)
    book.load_state_dict(state_dict, strict=True)
    models = {BOOK: (book.to(device).eval(), ch04.generate_text_simple)}
    return models


def to_hf_state_dict(sd: dict, cfg: dict) -> dict:
    """Our names -> Hugging Face GPT-2's: the reverse of ``helpers.weights``' plan. GPT-2's
    ``Conv1D`` stores (in, out), ``nn.Linear`` (out, in): every matrix is transposed, and the
    query, key and value matrices become one ``c_attn``."""
    d = cfg["emb_dim"]
    out = {
        "transformer.wte.weight": sd["tok_emb.weight"],
        "transformer.wpe.weight": sd["pos_emb.weight"],
        "transformer.ln_f.weight": sd["final_norm.scale"],
        "transformer.ln_f.bias": sd["final_norm.shift"],
        "lm_head.weight": sd["out_head.weight"],  # untied: the book's head is its own matrix
    }
    for i in range(cfg["n_layers"]):
        b, h = f"trf_blocks.{i}.", f"transformer.h.{i}."
        qkv = [sd[f"{b}att.W_{w}.weight"].T for w in ("query", "key", "value")]
        biases = [sd.get(f"{b}att.W_{w}.bias") for w in ("query", "key", "value")]
        out |= {
            h + "ln_1.weight": sd[b + "norm1.scale"],
            h + "ln_1.bias": sd[b + "norm1.shift"],
            h + "attn.c_attn.weight": torch.cat(qkv, dim=1),
            h + "attn.c_attn.bias": (
                torch.cat(biases) if cfg["qkv_bias"] else torch.zeros(3 * d)
            ),
            h + "attn.c_proj.weight": sd[b + "att.out_proj.weight"].T,
            h + "attn.c_proj.bias": sd[b + "att.out_proj.bias"],
            h + "ln_2.weight": sd[b + "norm2.scale"],
            h + "ln_2.bias": sd[b + "norm2.shift"],
            h + "mlp.c_fc.weight": sd[b + "ff.layers.0.weight"].T,
            h + "mlp.c_fc.bias": sd[b + "ff.layers.0.bias"],
            h + "mlp.c_proj.weight": sd[b + "ff.layers.2.weight"].T,
            h + "mlp.c_proj.bias": sd[b + "ff.layers.2.bias"],
        }
    return {name: t.contiguous() for name, t in out.items()}


def hf_model(state_dict: dict, cfg: dict, device):
    """``GPT2LMHeadModel`` with our weights: no dropout, tanh GELU, untied head, no end token
    (so it always generates every token, as the others do)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=cfg["vocab_size"], n_positions=cfg["context_length"], n_embd=cfg["emb_dim"],
        n_layer=cfg["n_layers"], n_head=cfg["n_heads"], activation_function="gelu_new",
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=1e-5,
        tie_word_embeddings=False, bos_token_id=None, eos_token_id=None,
    )
    model = GPT2LMHeadModel(config)
    result = model.load_state_dict(to_hf_state_dict(state_dict, cfg), strict=False)
    params = {name for name, _ in model.named_parameters()}
    assert not params & set(result.missing_keys), result.missing_keys  # only buffers may miss
    assert not result.unexpected_keys, result.unexpected_keys
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = None
    return model.to(device).eval()


# ---------------------------------------------------------------------------------------------
# The memory-bound ceiling
# ---------------------------------------------------------------------------------------------


def weight_bytes_per_step(model: nn.Module) -> int:
    """Bytes of weights one cached decoding step reads: every parameter once, except the
    embedding tables, of which a step reads one row (unless the output head shares the token
    table: then it is read in full, as the head)."""
    head = model.out_head.weight
    seen, total = set(), 0
    for module in model.modules():
        for param in module.parameters(recurse=False):
            if id(param) in seen:
                continue
            seen.add(id(param))
            if isinstance(module, nn.Embedding) and param is not head:
                total += param[0].numel() * param.element_size()  # one row: this token's
            else:
                total += param.numel() * param.element_size()
    return total


def read_bandwidth(device, size_bytes: int = 512 * 2**20, repeats: int = 5) -> float:
    """Bytes per second for reading a tensor much larger than the caches (the best of a few
    sums): about the most that a memory-bound decoding step can stream."""
    data = torch.ones(size_bytes // 4, device=device)
    return size_bytes / best_seconds(data.sum, device, repeats)


# ---------------------------------------------------------------------------------------------
# The contenders and the run
# ---------------------------------------------------------------------------------------------


def own_layers(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` with the cached steps' ``decoding_kernels`` switched off, so the
    cached steps run the model's layers as written: what those kernels are worth."""
    with mock.patch.object(helpers.kv_cache, "decoding_kernels", lambda model: nullcontext()):
        return fn(*args, **kwargs)


def contenders(cfg: dict, new_tokens: int, device) -> tuple[dict, dict, torch.Tensor, int]:
    """name -> a function that generates ``new_tokens`` (or ``n`` if given) greedily;
    name -> max |logit difference| from ours on the prompt; the prompt; the bytes of weights
    a cached step reads."""
    torch.manual_seed(SEED)
    ours = GPTModel(cfg).to(device).eval()
    state_dict = {k: v.detach().cpu() for k, v in ours.state_dict().items()}
    prompt = torch.randint(0, cfg["vocab_size"], (1, PROMPT_TOKENS), device=device)
    ctx = cfg["context_length"]
    runs = {
        OURS_CACHE: lambda n=new_tokens: generate(ours, prompt, n, ctx),
        OURS_OWN_LAYERS: lambda n=new_tokens: own_layers(generate, ours, prompt, n, ctx),
        OURS_PLAIN: lambda n=new_tokens: generate(ours, prompt, n, ctx, use_cache=False),
    }
    with torch.no_grad():
        reference = ours(prompt)
        logit_gaps = {OURS_CACHE: 0.0, OURS_OWN_LAYERS: 0.0, OURS_PLAIN: 0.0}
        for name, (model, gen) in book_models(state_dict, cfg, device).items():
            runs[name] = lambda n=new_tokens, model=model, gen=gen: gen(model, prompt, n, ctx)
            logit_gaps[name] = (model(prompt) - reference).abs().max().item()
        hf = hf_model(state_dict, cfg, device)
        logit_gaps[HF] = (hf(prompt).logits - reference).abs().max().item()
    runs[HF] = lambda n=new_tokens: hf.generate(
        prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=n, do_sample=False
    )
    return runs, logit_gaps, prompt, weight_bytes_per_step(ours)


def run(quick: bool = False, new_tokens: int | None = None, rounds: int | None = None) -> str:
    """Measure, and return the report as markdown (``new_tokens``, ``rounds``: overrides)."""
    setup = {**(QUICK if quick else FULL)}
    setup["new_tokens"] = new_tokens or setup["new_tokens"]
    setup["rounds"] = rounds or setup["rounds"]
    device = pick_device()
    runs, logit_gaps, prompt, step_bytes = contenders(setup["cfg"], setup["new_tokens"], device)
    ceiling_rate = read_bandwidth(device) / step_bytes  # tokens/s if only memory counted
    for warm_up in runs.values():  # first calls allocate and pick kernels: not timed
        warm_up(n=2)
    seconds, outputs = alternate(runs, setup["rounds"], device)

    expected = outputs[OURS_PLAIN].cpu()
    new_tokens = setup["new_tokens"]
    rows = []
    for name in runs:
        rate = [new_tokens * prompt.shape[0] / s for s in seconds[name]]
        rows.append([
            name,
            f"{sorted(rate)[len(rate) // 2]:.1f}",
            f"{median_ratio(seconds[OURS_PLAIN], seconds[name]):.2f}×",
            f"{median_ratio(seconds[HF], seconds[name]):.2f}×",
            f"{sorted(rate)[len(rate) // 2] / ceiling_rate:.1%}",
            "yes" if torch.equal(outputs[name].cpu(), expected) else "**NO**",
            f"{logit_gaps[name]:.1e}",
        ])
    cfg = setup["cfg"]
    lines = [
        "### Greedy generation" + (" (quick)" if quick else ""),
        "",
        f"{new_tokens} new tokens from a {PROMPT_TOKENS}-token prompt, batch 1; config "
        f"emb_dim {cfg['emb_dim']}, {cfg['n_layers']} layers, {cfg['n_heads']} heads, vocab "
        f"{cfg['vocab_size']}, context {cfg['context_length']}; random weights (seed {SEED}), "
        f"the same in every model. {setup['rounds']} alternating rounds after a warm-up; "
        "medians. " + environment_line(device),
        "",
        markdown_table(
            ["contender", "tokens/s", "speed-up vs ours no cache", "speed-up vs transformers",
             "share of memory-bound ceiling", "same tokens as ours", "max abs logit diff vs ours"],
            rows,
        ),
        "",
        f"Memory-bound ceiling: a cached step reads {step_bytes / 1e6:,.0f} MB of weights; at the "
        f"{ceiling_rate * step_bytes / 1e9:.1f} GB/s this machine reads a large tensor, no "
        f"batch-1 decoder can pass {ceiling_rate:,.1f} tokens/s here.",
        "",
    ]
    for (fast, slow), target in TARGETS.items():
        ratio = median_ratio(seconds[slow], seconds[fast])
        lines.append(f"- {fast} vs {slow}: {ratio:.2f}× — {verdict(ratio, target)}")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny config, a few seconds")
    parser.add_argument("--new-tokens", type=int, help=f"default {FULL['new_tokens']}")
    parser.add_argument("--rounds", type=int, help=f"default {FULL['rounds']}")
    parser.add_argument("--output", help="also write the markdown to this file")
    args = parser.parse_args(argv)
    write_report(run(args.quick, args.new_tokens, args.rounds), args.output)


if __name__ == "__main__":
    main()
