"""Pretraining as a command: one device, or many GPUs and machines with torchrun and DDP.

The notebook's loop (``helpers.training_run.train_model_resumable``) is for watching a model learn; this is for
running a longer job: configured by flags or a JSON file, counted in optimizer steps,
resumable, and the same script on a laptop, one GPU or many.

One device (CPU, one GPU or Apple silicon)::

    python -m helpers.pretrain --corpus tinyshakespeare.txt --n-layers 4 --emb-dim 256 \\
        --context-length 256 --batch-size 16 --epochs 2 --output data/pretrain/shakespeare

Several GPUs on one machine, or several machines (each runs the same command)::

    torchrun --standalone --nproc_per_node=4 -m helpers.pretrain --config run.json
    torchrun --nnodes=2 --nproc_per_node=8 --rdzv_backend=c10d --rdzv_endpoint=HOST:29500 \\
        -m helpers.pretrain --config run.json

torchrun starts one process per GPU and tells each its ``RANK``, ``LOCAL_RANK`` and
``WORLD_SIZE``. Each process holds a full copy of the model and trains on its own share of
every global batch (``batch_size / world_size`` windows); DistributedDataParallel averages
the gradients, so every copy takes the same step, the one a single device would take on the
whole batch. Only rank 0 prints, evaluates and writes files. Processes talk over NCCL on
GPUs and gloo on CPUs.

The output folder holds ``checkpoint/`` (weights, optimizer and progress: ``--resume``
continues from it, even with another number of processes), ``model/`` (the final weights in
the book's shapes: ``load_model_from_checkpoint("…/model")``) and ``metrics.json``
(the loss after every step and each evaluation).

A JSON config has the same keys as ``PretrainConfig``; ``model`` overrides
``GPT_CONFIG_124M`` and ``options`` holds ``TrainingOptions``. Flags override the file::

    {"corpus": "the-verdict.txt", "batch_size": 8, "epochs": 10, "lr": 0.0004,
     "model": {"context_length": 256, "n_layers": 4}, "options": {"fused_adamw": true}}
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from .atomic import write_json_atomically
from .checkpoint import load_checkpoint, read_checkpoint_metadata, save_checkpoint
from .data import DataError
from .dataset import GPTDatasetV1
from .model import GPT_CONFIG_124M, GPTModel, check_config
from .runtime import eval_mode
from .train import calc_loss_batch
from .train_options import (
    TrainingLoss,
    TrainingOptions,
    make_optimizer,
    prepare_model,
    unpad_output_head,
)

# ---------------------------------------------------------------------------------------------
# The configuration
# ---------------------------------------------------------------------------------------------


@dataclass
class PretrainConfig:
    """Everything a run depends on. ``batch_size`` is global: the sum over all processes."""

    model: dict = field(default_factory=lambda: {**GPT_CONFIG_124M, "context_length": 256})
    corpus: str = "the-verdict.txt"  # a name from helpers.data's registry, or a text file
    train_ratio: float = 0.9  # the first 90% of the text trains, the rest validates
    batch_size: int = 8
    epochs: int = 1
    max_steps: int | None = None  # stop earlier than the epochs would
    lr: float = 4e-4
    weight_decay: float = 0.1
    seed: int = 123
    eval_freq: int = 10  # evaluate every this many steps (and after the last)
    eval_iter: int = 5  # batches per evaluation
    checkpoint_every: int | None = None  # steps; a checkpoint is also written at the end
    output: str = "data/pretrain"
    resume: bool = False
    device: str | None = None  # default: this process's GPU, else helpers.runtime.get_device()
    options: TrainingOptions = field(default_factory=TrainingOptions)

    @classmethod
    def from_dict(cls, data: dict) -> PretrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Unknown config keys {unknown}; known keys: {sorted(known)}.")
        data = dict(data)
        data["model"] = {**GPT_CONFIG_124M, **data.get("model", {})}
        data["options"] = TrainingOptions(**data.get("options", {}))
        return cls(**data)

    def to_dict(self) -> dict:
        return asdict(self)


def _model_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model (overrides GPT_CONFIG_124M)")
    for name in ("context_length", "emb_dim", "n_heads", "n_layers"):
        group.add_argument(f"--{name.replace('_', '-')}", type=int, dest=f"model.{name}")
    group.add_argument("--drop-rate", type=float, dest="model.drop_rate")
    group.add_argument("--qkv-bias", action=argparse.BooleanOptionalAction, dest="model.qkv_bias")


def _option_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training options (see helpers.train_options.TrainingOptions)")
    for name in ("sdpa", "fused_adamw", "compile"):
        group.add_argument(
            f"--{name.replace('_', '-')}", action=argparse.BooleanOptionalAction,
            dest=f"options.{name}",
        )
    group.add_argument("--bf16", choices=["off", "on", "auto"], dest="options.bf16")
    group.add_argument("--pad-vocab", type=int, dest="options.pad_vocab_multiple",
                       help="pad the output head to a multiple of this many rows (64)")
    group.add_argument("--loss-chunk-rows", type=int, dest="options.loss_chunk_rows")


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.pretrain",
        description="Pretrain a GPT on one device, or on many under torchrun (DDP).",
        argument_default=argparse.SUPPRESS,  # only the flags given override the config file
    )
    parser.add_argument("--config", help="a JSON file with PretrainConfig's keys")
    parser.add_argument("--corpus", help="a registry name (the-verdict.txt) or a text file")
    parser.add_argument("--train-ratio", type=float, dest="train_ratio")
    parser.add_argument("--batch-size", type=int, dest="batch_size", help="global batch size")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--max-steps", type=int, dest="max_steps")
    parser.add_argument("--lr", type=float)
    parser.add_argument("--weight-decay", type=float, dest="weight_decay")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--eval-freq", type=int, dest="eval_freq")
    parser.add_argument("--eval-iter", type=int, dest="eval_iter")
    parser.add_argument("--checkpoint-every", type=int, dest="checkpoint_every")
    parser.add_argument("--output")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--device")
    _model_flags(parser)
    _option_flags(parser)
    return parser


def parse_config(argv: list[str] | None = None) -> PretrainConfig:
    """The config from ``--config FILE`` (if given) with the other flags on top."""
    flags = vars(argument_parser().parse_args(argv))
    data = {}
    if "config" in flags:
        data = json.loads(Path(flags.pop("config")).read_text(encoding="utf-8"))
    for key, value in flags.items():
        section, _, name = key.rpartition(".")
        if section:  # "model.n_layers" -> data["model"]["n_layers"]
            if section == "options" and name == "bf16":
                value = {"off": False, "on": True, "auto": "auto"}[value]
            data.setdefault(section, {})[name] = value
        else:
            data[key] = value
    return PretrainConfig.from_dict(data)


# ---------------------------------------------------------------------------------------------
# Processes: one, or one per GPU under torchrun
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    """Which process this is (``rank``) of how many (``size``); ``local_rank`` picks its GPU."""

    rank: int = 0
    local_rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, env=os.environ) -> World:
        """What torchrun sets in every process it starts; one process when it is absent."""
        rank, local_rank = int(env.get("RANK", 0)), int(env.get("LOCAL_RANK", 0))
        return cls(rank, local_rank, int(env.get("WORLD_SIZE", 1)))


def choose_device(config: PretrainConfig, world: World) -> torch.device:
    if config.device:
        return torch.device(config.device)
    if torch.cuda.is_available():
        return torch.device("cuda", world.local_rank % torch.cuda.device_count())
    from .runtime import get_device

    return get_device()


def start_processes(world: World, device: torch.device) -> None:
    """Join the other processes: NCCL between GPUs, gloo between CPUs."""
    if world.size == 1:
        return
    import torch.distributed as dist

    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def stop_processes(world: World, finished: bool) -> None:
    if world.size > 1:
        import torch.distributed as dist

        if finished:
            dist.barrier()  # nobody leaves while rank 0 may still be writing
        dist.destroy_process_group()


def mean_over_processes(value: torch.Tensor, world: World) -> float:
    """The mean of a scalar over all processes (gloo has no AVG, so SUM / size)."""
    if world.size == 1:
        return value.item()
    import torch.distributed as dist

    total = value.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total.item() / world.size


# ---------------------------------------------------------------------------------------------
# Data: the corpus, its windows, and which of them each process trains on at each step
# ---------------------------------------------------------------------------------------------


def read_corpus(name: str) -> str:
    """A text file's contents if ``name`` is a path to one, else the registry file ``name``."""
    path = Path(name)
    if path.is_file():
        return path.read_text(encoding="utf-8")
    from .data import read_text

    return read_text(name)


def build_datasets(text: str, tokenizer, config: PretrainConfig):
    """(train, validation) windows of ``context_length`` tokens, not overlapping, as in the book."""
    context = config.model["context_length"]
    split = int(config.train_ratio * len(text))
    parts = {}
    for part, piece in (("training", text[:split]), ("validation", text[split:])):
        try:
            parts[part] = GPTDatasetV1(piece, tokenizer, context, stride=context)
        except ValueError as err:
            raise ValueError(
                f"The {part} part of {config.corpus!r} ({len(piece):,} characters) is too short "
                f"for one window of context_length={context}: {err}"
            ) from None
    if len(parts["training"]) < config.batch_size:
        raise ValueError(
            f"{config.corpus!r} gives {len(parts['training'])} training windows of "
            f"{context} tokens, fewer than one global batch of {config.batch_size}. Use a "
            "longer corpus, a smaller batch_size or a smaller context_length."
        )
    return parts["training"], parts["validation"]


def epoch_order(num_windows: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled window order of one epoch: the same in every process and after resuming,
    whatever the number of processes, because it depends only on the seed and the epoch."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(num_windows, generator=generator)


def process_share(order: torch.Tensor, step_in_epoch: int, batch_size: int, world: World):
    """The window indices this process trains on at this step: its slice of the global batch."""
    per_process = batch_size // world.size
    start = step_in_epoch * batch_size + world.rank * per_process
    return order[start : start + per_process]


def stack_windows(dataset, indices) -> tuple[torch.Tensor, torch.Tensor]:
    pairs = [dataset[int(i)] for i in indices]
    return torch.stack([x for x, _ in pairs]), torch.stack([y for _, y in pairs])


def check_batch(config: PretrainConfig, world: World) -> None:
    if config.batch_size % world.size:
        raise ValueError(
            f"The global batch_size ({config.batch_size}) must be divisible by the number of "
            f"processes ({world.size}): each gets an equal share, so that averaging their "
            f"gradients equals one step on the whole batch. Use a batch_size that is a "
            f"multiple of {world.size}."
        )


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


@dataclass
class Progress:
    """Saved in the checkpoint as JSON: where the run is, and what it has measured so far."""

    step: int = 0  # optimizer steps done
    tokens_seen: int = 0
    train_losses: list[float] = field(default_factory=list)  # each step's global batch loss
    eval_steps: list[int] = field(default_factory=list)
    eval_train_losses: list[float] = field(default_factory=list)
    eval_val_losses: list[float] = field(default_factory=list)
    train_seconds: float = 0.0


class PretrainRun:
    """One process's part of a run; ``run()`` trains until the configured number of steps."""

    def __init__(self, config: PretrainConfig, world: World, device: torch.device):
        self.config, self.world, self.device = config, world, device
        check_config(config.model)
        check_batch(config, world)
        from .tokenizer import gpt2_tokenizer

        self.train_data, self.val_data = build_datasets(
            read_corpus(config.corpus), gpt2_tokenizer(), config
        )
        self.steps_per_epoch = len(self.train_data) // config.batch_size  # whole batches only
        self.total_steps = self.steps_per_epoch * config.epochs
        if config.max_steps is not None:
            self.total_steps = min(self.total_steps, config.max_steps)
        self.output = Path(config.output)
        torch.manual_seed(config.seed)  # the same initial weights in every process
        self.model = prepare_model(GPTModel(config.model), config.options).to(device)
        self.optimizer = make_optimizer(self.model, config.options, config.lr, config.weight_decay)
        self.progress = Progress()
        if config.resume and (self.output / "checkpoint").exists():
            self._resume()
        self.loss = TrainingLoss(self.model, config.options, device, self._data_parallel())

    def _data_parallel(self):
        """The DDP wrapper that averages gradients over the processes (None for one process)."""
        if self.world.size == 1:
            return None
        from torch.nn.parallel import DistributedDataParallel

        # the attention masks are constants: no need to send them around at every forward
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(self.model, device_ids=ids, broadcast_buffers=False)

    def _resume(self) -> None:
        path = self.output / "checkpoint"
        meta = read_checkpoint_metadata(path)
        saved = meta.get("extra") or {}
        for key in ("batch_size", "corpus", "seed", "train_ratio"):
            if key in saved and saved[key] != getattr(self.config, key):
                raise ValueError(
                    f"The checkpoint at {path} was trained with {key}={saved[key]!r}, this run "
                    f"has {getattr(self.config, key)!r}: it cannot continue the same run. "
                    "Use the same settings or another --output."
                )
        load_checkpoint(path, self.model, self.optimizer, map_location=self.device)
        self.progress = Progress(**meta["training"])
        self._print(f"Resuming from {path} after step {self.progress.step}.")

    # --- the loop ------------------------------------------------------------------------------

    def run(self) -> Progress:
        progress, config = self.progress, self.config
        started, order, order_epoch = time.perf_counter(), None, None
        seconds_before = progress.train_seconds
        self._print(self._banner())
        while progress.step < self.total_steps:
            epoch, step_in_epoch = divmod(progress.step, self.steps_per_epoch)
            if order_epoch != epoch:
                order, order_epoch = epoch_order(len(self.train_data), config.seed, epoch), epoch
            indices = process_share(order, step_in_epoch, config.batch_size, self.world)
            loss = self.train_step(*stack_windows(self.train_data, indices), progress.step)
            progress.train_losses.append(mean_over_processes(loss, self.world))
            progress.tokens_seen += config.batch_size * config.model["context_length"]
            progress.step += 1
            progress.train_seconds = seconds_before + time.perf_counter() - started
            last = progress.step == self.total_steps
            if progress.step % config.eval_freq == 0 or last:
                self.evaluate()
            if last or (config.checkpoint_every and progress.step % config.checkpoint_every == 0):
                self.save_checkpoint()
        self.finish()
        return progress

    def train_step(self, inputs, targets, step: int) -> torch.Tensor:
        # Dropout draws from a generator seeded by step and rank: a resumed run draws the
        # same numbers as an uninterrupted one, without saving any generator state.
        torch.manual_seed(self.config.seed + 7_919 * step + self.world.rank)
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(inputs, targets)
        loss.backward()  # under DDP, this also averages the gradients of all processes
        self.optimizer.step()
        return loss.detach()

    def evaluate(self) -> None:
        """Rank 0 only: the book's losses over the first ``eval_iter`` batches of each part."""
        if not self.world.is_main:
            return
        progress = self.progress
        train_loss = self._mean_loss(self.train_data)
        val_loss = self._mean_loss(self.val_data)
        progress.eval_steps.append(progress.step)
        progress.eval_train_losses.append(train_loss)
        progress.eval_val_losses.append(val_loss)
        rate = progress.tokens_seen / max(progress.train_seconds, 1e-9)
        self._print(
            f"Step {progress.step:06d}/{self.total_steps:06d}: train loss {train_loss:.3f}, "
            f"val loss {val_loss:.3f}, {rate:,.0f} tokens/s"
        )

    def _mean_loss(self, dataset) -> float:
        """The plain model in eval mode, no DDP: no other process needs to take part."""
        batch = self.config.batch_size
        losses = []
        with eval_mode(self.model):
            for start in range(0, min(len(dataset), batch * self.config.eval_iter), batch):
                indices = range(start, min(start + batch, len(dataset)))
                inputs, targets = stack_windows(dataset, indices)
                losses.append(calc_loss_batch(inputs, targets, self.model, self.device).item())
        return sum(losses) / len(losses)

    # --- files -----------------------------------------------------------------------------------

    def save_checkpoint(self) -> None:
        if self.world.is_main:
            save_checkpoint(
                self.output / "checkpoint", self.model, self.optimizer,
                step=self.progress.step, config=self.config.model,
                training=asdict(self.progress), extra=self._run_facts(),
            )

    def finish(self) -> None:
        """Rank 0: the final weights in the book's shapes, and the metrics."""
        self.loss.close()
        if not self.world.is_main:
            return
        final = GPTModel(self.config.model)
        final.load_state_dict(unpad_output_head(_copy_of(self.model)).state_dict())
        facts = self._run_facts()
        save_checkpoint(self.output / "model", final, step=self.progress.step, extra=facts)
        metrics = {"config": _jsonable(self.config.to_dict()), "world_size": self.world.size,
                   **asdict(self.progress)}
        write_json_atomically(self.output / "metrics.json", metrics, indent=1)
        self._print(f"Done: {self.progress.step} steps; weights in {self.output / 'model'}.")

    def _run_facts(self) -> dict:
        keys = ("batch_size", "corpus", "seed", "train_ratio")
        facts = {key: getattr(self.config, key) for key in keys}
        return {**facts, "options": self.config.options.to_dict(), "world_size": self.world.size}

    def _banner(self) -> str:
        params = sum(p.numel() for p in self.model.parameters())
        return (
            f"Pretraining {params:,} parameters on {self.config.corpus!r}: {self.total_steps} "
            f"steps of {self.config.batch_size} x {self.config.model['context_length']} tokens, "
            f"{self.world.size} process(es) on {self.device}.\n{self.config.options.describe()}"
        )

    def _print(self, line: str) -> None:
        if self.world.is_main:
            print(line, flush=True)


def _copy_of(model):
    import copy

    return copy.deepcopy(model).cpu()


def _jsonable(data):
    return json.loads(json.dumps(data, default=lambda value: asdict(value)))


def pretrain(config: PretrainConfig, world: World | None = None) -> Progress:
    """Run ``config`` in this process (joining the others under torchrun); rank 0 writes files."""
    world = world or World.from_env()
    check_batch(config, world)  # before joining: a clear error instead of a hang
    device = choose_device(config, world)
    start_processes(world, device)
    finished = False
    try:
        progress = PretrainRun(config, world, device).run()
        finished = True
        return progress
    finally:
        stop_processes(world, finished)


def main(argv: list[str] | None = None) -> int:
    world = World.from_env()
    try:
        config = parse_config(argv)
        pretrain(config, world)
    except (ValueError, DataError) as err:  # bad settings, or a corpus that cannot be had
        print(f"error (rank {world.rank}): {err}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
