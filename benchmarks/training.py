"""Training-step throughput and peak memory: helpers' GPTModel against the book's and transformers'.

    python benchmarks/training.py            # both configs (about 20 minutes on 2 busy CPU cores)
    python benchmarks/training.py --quick    # the small config only, 3 rounds

Contenders, all at the same weights, on the same batch, with ``AdamW(lr=4e-4, wd=0.1)``:

- helpers, book step: ``helpers.model.GPTModel`` with ``calc_loss_batch``, as notebook 06 trains;
- helpers, fast options: the same model with ``TrainingOptions.fast`` (fused AdamW, chunked
  loss; on CUDA also bf16 and a padded head; ``torch.compile`` is left out: minutes to compile);
- book: ``llms_from_scratch.ch04.GPTModel`` (PyPI ``llms-from-scratch``, the book's own code);
- transformers: ``GPT2LMHeadModel`` with the head untied, loss by ``F.cross_entropy``.

Before timing, each model's loss on the batch must equal ours (the weights were copied into it),
so the same computation is timed. One timed run is one optimizer step (zero_grad, forward, loss,
backward, step); contenders alternate within a round and the median ratio over rounds is
reported. Peak memory is the peak resident memory (``VmHWM``) of a fresh process that builds one
model and trains one step (CPU), or ``torch.cuda.max_memory_allocated`` (GPU). MFU: training FLOPs
(3 x ``flops_per_token`` with the output head) per second over this machine's float32 matmul
peak, measured here with a large ``torch.matmul``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `helpers` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benchmarks.common import (  # noqa: E402
    ROOT,
    alternate,
    best_seconds,
    environment_line,
    markdown_table,
    median_ratio,
    pick_device,
)
from helpers.model import GPT_CONFIG_124M, GPTModel, flops_per_token  # noqa: E402
from helpers.train import calc_loss_batch  # noqa: E402
from helpers.train_options import (  # noqa: E402
    TrainingLoss,
    TrainingOptions,
    make_optimizer,
    prepare_model,
)

# name -> (model config, batch size); context 256 keeps a 124M step in seconds on two CPU cores
CONFIGS = {
    "124M, context 256": ({**GPT_CONFIG_124M, "context_length": 256, "drop_rate": 0.0}, 2),
    "4 layers, emb 256, context 256": (
        {**GPT_CONFIG_124M, "context_length": 256, "emb_dim": 256, "n_heads": 4,
         "n_layers": 4, "drop_rate": 0.0},
        4,
    ),
}
CONTENDERS = ("helpers, book step", "helpers, fast options", "book (llms_from_scratch)",
              "transformers GPT2LMHeadModel")
BIG, SMALL = CONFIGS
OURS = CONTENDERS[:2]
PEERS = CONTENDERS[2:]
LR, WEIGHT_DECAY, SEED = 4e-4, 0.1, 123


def fast_options(device) -> TrainingOptions:
    options = TrainingOptions.fast(device)
    return TrainingOptions(**{**options.to_dict(), "compile": False})


# ---------------------------------------------------------------------------------------------
# The same weights in three implementations
# ---------------------------------------------------------------------------------------------


def book_model(cfg: dict, ours: GPTModel):
    from llms_from_scratch.ch04 import GPTModel as BookGPTModel

    model = BookGPTModel(cfg)
    model.load_state_dict(ours.state_dict())  # the book's names and shapes are ours
    return model


def hf_state_dict(ours: GPTModel) -> dict[str, torch.Tensor]:
    """Our weights under transformers' names: Conv1D stores (in, out), so Linear weights are
    transposed, and query, key and value sit side by side in one ``c_attn``."""
    sd = {k: v for k, v in ours.state_dict().items() if not k.endswith(".mask")}
    d = ours.tok_emb.embedding_dim
    out = {
        "transformer.wte.weight": sd["tok_emb.weight"],
        "transformer.wpe.weight": sd["pos_emb.weight"],
    }
    for i in range(len(ours.trf_blocks)):
        b, h = f"trf_blocks.{i}.", f"transformer.h.{i}."
        qkv = [f"{b}att.W_{kind}" for kind in ("query", "key", "value")]
        out[h + "attn.c_attn.weight"] = torch.cat([sd[w + ".weight"].T for w in qkv], dim=1)
        biases = [sd.get(w + ".bias", torch.zeros(d)) for w in qkv]  # no qkv bias: zeros
        out[h + "attn.c_attn.bias"] = torch.cat(biases)
        for ours_name, hf_name, transpose in (
            ("att.out_proj", "attn.c_proj", True), ("ff.layers.0", "mlp.c_fc", True),
            ("ff.layers.2", "mlp.c_proj", True),
        ):
            weight = sd[f"{b}{ours_name}.weight"]
            out[f"{h}{hf_name}.weight"] = weight.T if transpose else weight
            out[f"{h}{hf_name}.bias"] = sd[f"{b}{ours_name}.bias"]
        for norm, ln in (("norm1", "ln_1"), ("norm2", "ln_2")):
            out[f"{h}{ln}.weight"] = sd[f"{b}{norm}.scale"]
            out[f"{h}{ln}.bias"] = sd[f"{b}{norm}.shift"]
    out["transformer.ln_f.weight"] = sd["final_norm.scale"]
    out["transformer.ln_f.bias"] = sd["final_norm.shift"]
    out["lm_head.weight"] = sd["out_head.weight"]
    return {k: v.contiguous().clone() for k, v in out.items()}


def hf_model(cfg: dict, ours: GPTModel):
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=cfg["vocab_size"], n_positions=cfg["context_length"], n_embd=cfg["emb_dim"],
        n_layer=cfg["n_layers"], n_head=cfg["n_heads"], activation_function="gelu_new",
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=1e-5,
        tie_word_embeddings=False,  # the book's head is its own matrix
    )
    model = GPT2LMHeadModel(config)
    missing, unexpected = model.load_state_dict(hf_state_dict(ours), strict=False)
    # older transformers keep the causal mask as a buffer; nothing else may be left out
    assert not unexpected and all(".attn.bias" in k or "masked_bias" in k for k in missing), (
        missing, unexpected)
    return model


class LogitsOnly(torch.nn.Module):
    """transformers' output object -> the logits tensor, like the other two models return."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, ids):
        return self.model(ids).logits


# ---------------------------------------------------------------------------------------------
# Training steps
# ---------------------------------------------------------------------------------------------


def build(name: str, cfg: dict, device, ours: GPTModel | None = None):
    """(model, optimizer, loss function) of one contender; ``ours`` supplies the weights."""
    if ours is None:
        torch.manual_seed(SEED)
        ours = GPTModel(cfg)
    if name == "helpers, book step":
        model = ours
    elif name == "helpers, fast options":
        model = GPTModel(cfg)
        model.load_state_dict(ours.state_dict())
    elif name == "book (llms_from_scratch)":
        model = book_model(cfg, ours)
    else:
        model = LogitsOnly(hf_model(cfg, ours))
    model.to(device).train()
    if name == "helpers, fast options":
        options = fast_options(device)
        prepare_model(model, options)
        optimizer = make_optimizer(model, options, LR, WEIGHT_DECAY)
        return model, optimizer, TrainingLoss(model, options, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    return model, optimizer, lambda x, y: calc_loss_batch(x, y, model, device)


def step(optimizer, loss_fn, inputs, targets) -> float:
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(inputs, targets)
    loss.backward()
    optimizer.step()
    return loss.item()


def batch(cfg: dict, batch_size: int, device):
    generator = torch.Generator().manual_seed(SEED)
    ids = torch.randint(0, cfg["vocab_size"], (batch_size, cfg["context_length"] + 1),
                        generator=generator)
    return ids[:, :-1].to(device), ids[:, 1:].to(device)


def check_same_losses(contenders: dict, inputs, targets, tolerance: float = 2e-4) -> float:
    """The first losses at identical weights must agree: otherwise we would time different maths.
    Returns the largest difference from ours."""
    with torch.no_grad():
        losses = {name: fn(inputs, targets).item() for name, (_, _, fn) in contenders.items()}
    reference = losses[OURS[0]]
    worst = max(abs(loss - reference) for loss in losses.values())
    if worst > tolerance:
        raise AssertionError(f"The models disagree at identical weights: {losses}")
    return worst


# ---------------------------------------------------------------------------------------------
# Peak memory (a fresh process each) and the machine's matmul peak
# ---------------------------------------------------------------------------------------------

MEMORY_PROBE = """
import json, sys, torch
sys.path.insert(0, sys.argv[1])
from benchmarks.common import peak_resident_bytes
from benchmarks.training import CONFIGS, batch, build, step
cfg, batch_size = CONFIGS[sys.argv[2]]
device = torch.device(sys.argv[4])
model, optimizer, loss_fn = build(sys.argv[3], cfg, device)
inputs, targets = batch(cfg, batch_size, device)
if device.type == "cuda":
    torch.cuda.reset_peak_memory_stats(device)
step(optimizer, loss_fn, inputs, targets)  # the first step allocates AdamW's state too
if device.type == "cuda":
    peak = torch.cuda.max_memory_allocated(device)
else:
    peak = peak_resident_bytes()
print(json.dumps({"peak_bytes": peak}))
"""


def peak_memory(config_name: str, contender: str, device) -> int:
    command = [sys.executable, "-c", MEMORY_PROBE, str(ROOT), config_name, contender, str(device)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_bytes"]


def matmul_peak_flops(device, size: int = 2048, repeats: int = 5) -> float:
    """The best float32 FLOP/s of a large square matmul: the ceiling for MFU."""
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    return 2 * size**3 / best_seconds(lambda: torch.matmul(a, b), device, repeats)


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------


def measure_config(config_name: str, device, rounds: int, peak: float) -> tuple[list[list], dict]:
    cfg, batch_size = CONFIGS[config_name]
    torch.manual_seed(SEED)
    ours = GPTModel(cfg)
    contenders = {name: build(name, cfg, device, ours) for name in CONTENDERS}
    inputs, targets = batch(cfg, batch_size, device)
    worst = check_same_losses(contenders, inputs, targets)
    runs = {name: (lambda o=opt, f=fn: step(o, f, inputs, targets))
            for name, (_, opt, fn) in contenders.items()}
    for run in runs.values():  # warm-up: allocator, thread pools, lazy optimizer state
        run()
    seconds, _ = alternate(runs, rounds, device)  # (the last losses are not needed here)
    tokens = batch_size * cfg["context_length"]
    train_flops = 3 * flops_per_token(cfg, include_output_head=True)
    fastest_peer = min(PEERS, key=lambda name: statistics.median(seconds[name]))
    del contenders, runs, ours
    rows = []
    for name in CONTENDERS:
        rate = tokens / statistics.median(seconds[name])
        memory = peak_memory(config_name, name, device) / 2**20
        rows.append([config_name, name, f"{rate:,.0f}", f"{rate * train_flops / peak:.1%}",
                     f"{median_ratio(seconds[fastest_peer], seconds[name]):.2f}×",
                     f"{memory:,.0f}"])
    summary = {name: median_ratio(seconds[fastest_peer], seconds[name]) for name in OURS}
    summary.update(fastest_peer=fastest_peer, loss_difference=worst)
    return rows, summary


def run(quick: bool = False) -> str:
    """The markdown report: one row per config and contender, then the verdict."""
    device = pick_device()
    # config -> rounds: a 124M step takes tens of seconds on a CPU, so fewer of those
    plan = {SMALL: 3} if quick else {BIG: 3, SMALL: 5}
    if device.type == "cuda":
        plan = {name: 10 for name in plan}
    peak = matmul_peak_flops(device)
    rows, notes = [], []
    for config_name, rounds in plan.items():
        config_rows, summary = measure_config(config_name, device, rounds, peak)
        rows += config_rows
        best_ours = max(summary[name] for name in OURS)
        notes.append(
            f"- {config_name}, {rounds} rounds: ours / fastest peer ({summary['fastest_peer']}) = "
            f"{summary[OURS[0]]:.2f}× (book step), {summary[OURS[1]]:.2f}× (fast options): "
            f"target ≥ 1.0× {'met' if best_ours >= 1.0 else 'missed'}; losses at equal "
            f"weights agree within {summary['loss_difference']:.1e}."
        )
    headers = ["config", "model", "tokens/s", "MFU", "speed vs fastest peer", "peak MiB"]
    return "\n".join([
        "### Training step: throughput and memory (alternating rounds, medians)",
        "",
        environment_line(device) + f" float32 matmul peak: {peak / 1e9:,.0f} GFLOP/s.",
        f"Fast options: {', '.join(k for k, v in fast_options(device).to_dict().items() if v)}.",
        "",
        markdown_table(headers, rows),
        "",
        *notes,
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the small config only, 3 rounds")
    print(run(parser.parse_args(argv).quick))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
