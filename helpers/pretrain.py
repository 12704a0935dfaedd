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

Nothing a run did is lost: Ctrl-C saves the steps done and prints the command that continues
them (the same flags and ``--resume``); a NaN loss stops the run before it reaches the weights,
keeping the last good step; any other failure saves first, then reports. Every flag, file and
setting is checked before the first step, and a mistake is one line (``pretrain: error: ...``);
a new run refuses an ``--output`` that holds an earlier run's checkpoint instead of overwriting it.

A JSON config has the same keys as ``PretrainConfig``; ``model`` overrides
``GPT_CONFIG_124M`` and ``options`` holds ``TrainingOptions``. Flags override the file::

    {"corpus": "the-verdict.txt", "batch_size": 8, "epochs": 10, "lr": 0.0004,
     "model": {"context_length": 256, "n_layers": 4}, "options": {"fused_adamw": true}}
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from .atomic import write_json_atomically
from .checkpoint import (
    CheckpointError,
    load_checkpoint,
    previous_checkpoint,
    read_checkpoint_metadata,
    save_checkpoint,
)
from .data import REGISTRY, CommandParser, DataError, one_line
from .dataset import GPTDatasetV1
from .model import GPT_CONFIG_124M, GPTModel, check_config
from .runtime import check_device, check_settings, eval_mode, interrupts_deferred
from .train import calc_loss_batch
from .train_options import (
    TrainingLoss,
    TrainingOptions,
    make_optimizer,
    prepare_model,
    unpad_output_head,
)
from .validate import (
    check_can_write,
    check_int,
    check_known_keys,
    check_number,
    did_you_mean,
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
    def from_dict(cls, data: dict, source: str = "the pretrain config") -> PretrainConfig:
        """A checked config: a misspelt key, a number given as text ("0.1"), a null or a
        value out of range is refused here, naming the key and ``source``."""
        if not isinstance(data, dict):
            raise ValueError(f"{source} must be a JSON object ({{...}}), not {type(data).__name__}.")
        check_known_keys(data, [f.name for f in fields(cls)], source)
        data = dict(data)
        for section, known in (("model", GPT_CONFIG_124M), ("options", TrainingOptions.__dataclass_fields__)):
            given = data.get(section, {})
            if not isinstance(given, dict):
                raise ValueError(f"{section!r} in {source} must be an object ({{...}}), got {given!r}.")
            check_known_keys(given, list(known), f"{source}'s {section!r}")
        data["model"] = {**GPT_CONFIG_124M, **data.get("model", {})}
        check_model_values(data["model"], source)
        check_option_values(data.get("options", {}), source)
        data["options"] = TrainingOptions(**data.get("options", {}))
        config = cls(**data)
        check_values(config, source)
        return config

    def to_dict(self) -> dict:
        return asdict(self)


# The range of every number a run takes: (check, bounds). Flags and JSON files share it.
WHOLE = {
    "batch_size": {"minimum": 1}, "epochs": {"minimum": 1}, "max_steps": {"minimum": 1},
    "seed": {"minimum": 0, "maximum": 2**32 - 1}, "eval_freq": {"minimum": 1},
    "eval_iter": {"minimum": 1}, "checkpoint_every": {"minimum": 1},
    "context_length": {"minimum": 1}, "emb_dim": {"minimum": 1}, "n_heads": {"minimum": 1},
    "n_layers": {"minimum": 1}, "vocab_size": {"minimum": 1},
    "pad_vocab_multiple": {"minimum": 1}, "loss_chunk_rows": {"minimum": 1},
}
REAL = {
    "train_ratio": {"low": 0, "high": 1, "low_open": True, "high_open": True},
    "lr": {"low": 0, "low_open": True}, "weight_decay": {"low": 0},
    "drop_rate": {"low": 0, "high": 1, "high_open": True},
}
MAY_BE_NULL = ("max_steps", "checkpoint_every", "device", "pad_vocab_multiple", "loss_chunk_rows")


def check_value(key: str, value, where: str):
    """One setting against its row of ``WHOLE``/``REAL``; ``where`` names it in the message."""
    if value is None and key in MAY_BE_NULL:
        return None
    if key in WHOLE:
        return check_int(value, where, **WHOLE[key])
    if key in REAL:
        return check_number(value, where, **REAL[key])
    return value


def _check_type(value, kind: type, where: str, wanted: str) -> None:
    if not isinstance(value, kind):  # JSON's "False" or null where true/false belongs
        raise ValueError(f"{where} must be {wanted}, got {value!r} ({type(value).__name__}).")


def check_values(config: PretrainConfig, source: str = "the pretrain config") -> None:
    """Every top-level number in range, and text where text belongs."""
    for key in (*WHOLE, *REAL):
        if hasattr(config, key):
            check_value(key, getattr(config, key), f"{key} in {source}")
    for key in ("corpus", "output"):
        value = getattr(config, key)
        _check_type(value, str, f"{key} in {source}", "a non-empty string")
        if not value.strip():
            raise ValueError(f"{key} in {source} must be a non-empty string, got {value!r}.")
    if config.device is not None:
        _check_type(config.device, str, f"device in {source}", "a device name such as 'cpu'")
    _check_type(config.resume, bool, f"resume in {source}", "true or false")


def check_model_values(model: dict, source: str) -> None:
    """The model section's numbers and switch (``helpers.model.check_config`` checks the rest)."""
    for key, value in model.items():
        check_value(key, value, f"model.{key} in {source}")
    _check_type(model.get("qkv_bias", False), bool, f"model.qkv_bias in {source}", "true or false")


def check_option_values(options: dict, source: str) -> None:
    for key, value in options.items():
        where = f"options.{key} in {source}"
        if key in ("sdpa", "fused_adamw", "compile"):
            _check_type(value, bool, where, "true or false")
        elif key == "bf16":
            if not (value is True or value is False or value == "auto"):
                raise ValueError(f"{where} must be false, true or \"auto\", got {value!r}.")
        else:
            check_value(key, value, where)


def _flag_type(key: str, convert):
    """An argparse type: ``convert`` the text, then check it against ``key``'s range, so
    ``--batch-size -4`` is refused by the parser, naming the flag."""
    def parse(text: str):
        value = convert(text)  # bad text: argparse's own "invalid int value: 'x'"
        try:
            return check_value(key, value, key)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
    parse.__name__ = convert.__name__  # argparse says "invalid int value: 'x'" for bad text
    return parse


def _model_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model (overrides GPT_CONFIG_124M)")
    for name in ("context_length", "emb_dim", "n_heads", "n_layers"):
        group.add_argument(f"--{name.replace('_', '-')}", type=_flag_type(name, int), dest=f"model.{name}")
    group.add_argument("--drop-rate", type=_flag_type("drop_rate", float), dest="model.drop_rate")
    group.add_argument("--qkv-bias", action=argparse.BooleanOptionalAction, dest="model.qkv_bias")


def _option_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training options (see helpers.train_options.TrainingOptions)")
    for name in ("sdpa", "fused_adamw", "compile"):
        group.add_argument(
            f"--{name.replace('_', '-')}", action=argparse.BooleanOptionalAction,
            dest=f"options.{name}",
        )
    group.add_argument("--bf16", choices=["off", "on", "auto"], dest="options.bf16")
    group.add_argument("--pad-vocab", type=_flag_type("pad_vocab_multiple", int),
                       dest="options.pad_vocab_multiple",
                       help="pad the output head to a multiple of this many rows (64)")
    group.add_argument("--loss-chunk-rows", type=_flag_type("loss_chunk_rows", int),
                       dest="options.loss_chunk_rows")


def argument_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="python -m helpers.pretrain",
        description="Pretrain a GPT on one device, or on many under torchrun (DDP).",
        argument_default=argparse.SUPPRESS,  # only the flags given override the config file
    )
    parser.add_argument("--config", help="a JSON file with PretrainConfig's keys")
    parser.add_argument("--corpus", help="a registry name (the-verdict.txt) or a text file")
    parser.add_argument("--train-ratio", type=_flag_type("train_ratio", float), dest="train_ratio")
    parser.add_argument("--batch-size", type=_flag_type("batch_size", int), dest="batch_size",
                        help="global batch size")
    parser.add_argument("--epochs", type=_flag_type("epochs", int))
    parser.add_argument("--max-steps", type=_flag_type("max_steps", int), dest="max_steps")
    parser.add_argument("--lr", type=_flag_type("lr", float))
    parser.add_argument("--weight-decay", type=_flag_type("weight_decay", float), dest="weight_decay")
    parser.add_argument("--seed", type=_flag_type("seed", int))
    parser.add_argument("--eval-freq", type=_flag_type("eval_freq", int), dest="eval_freq")
    parser.add_argument("--eval-iter", type=_flag_type("eval_iter", int), dest="eval_iter")
    parser.add_argument("--checkpoint-every", type=_flag_type("checkpoint_every", int),
                        dest="checkpoint_every")
    parser.add_argument("--output")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--device")
    _model_flags(parser)
    _option_flags(parser)
    return parser


def parse_config(argv: list[str] | None = None) -> PretrainConfig:
    """The config from ``--config FILE`` (if given) with the other flags on top."""
    flags = vars(argument_parser().parse_args(argv))
    data, source = {}, "the pretrain flags"
    if "config" in flags:
        source = f"--config {flags['config']}"
        data = read_config_file(flags.pop("config"))
        if not isinstance(data, dict):
            raise ValueError(f"{source} must hold a JSON object ({{...}}), not a {type(data).__name__}.")
    for section in ("model", "options"):  # the flags below add to these sections
        if not isinstance(data.get(section, {}), dict):
            raise ValueError(f"{section!r} in {source} must be an object ({{...}}), got {data[section]!r}.")
    for key, value in flags.items():
        section, _, name = key.rpartition(".")
        if section:  # "model.n_layers" -> data["model"]["n_layers"]
            if section == "options" and name == "bf16":
                value = {"off": False, "on": True, "auto": "auto"}[value]
            data.setdefault(section, {})[name] = value
        else:
            data[key] = value
    return PretrainConfig.from_dict(data, source)


def read_config_file(name: str):
    """The JSON in ``--config name``, or a ValueError that names the file and the problem."""
    path = Path(name)
    if not path.is_file():
        problem = "is a folder" if path.is_dir() else "does not exist"
        raise ValueError(f"--config {name} {problem}; give a JSON file with PretrainConfig's keys.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"--config {name} is not a UTF-8 text file; give a JSON file.") from None
    except json.JSONDecodeError as err:
        raise ValueError(
            f"--config {name} is not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}."
        ) from None


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
        numbers = []
        for name, default in (("RANK", 0), ("LOCAL_RANK", 0), ("WORLD_SIZE", 1)):
            text = str(env.get(name, default)).strip()
            if not text.isdigit():
                raise ValueError(
                    f"{name}={text!r} is not a whole number; torchrun sets it: start the "
                    "command with torchrun, or unset RANK, LOCAL_RANK and WORLD_SIZE."
                )
            numbers.append(int(text))
        if numbers[2] < 1 or numbers[0] >= numbers[2]:
            raise ValueError(f"RANK={numbers[0]} must be below WORLD_SIZE={numbers[2]} (at least 1).")
        return cls(*numbers)


def choose_device(config: PretrainConfig, world: World) -> torch.device:
    if config.device:
        return check_device(config.device, "--device")
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
    path = Path(name).expanduser()
    if path.is_file():
        try:
            return path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"--corpus {name} is not UTF-8 text; save it as UTF-8 first.") from None
    if name not in REGISTRY:
        problem = "is a folder" if path.is_dir() else "is neither a text file here nor a registry name"
        raise ValueError(
            f"--corpus {name} {problem}{did_you_mean(name, REGISTRY)}; give a UTF-8 text file "
            f"or one of {', '.join(REGISTRY)}."
        )
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


class TrainingDiverged(ValueError):
    """The loss became NaN or infinite; the step that produced it was not taken."""


def check_output(config: PretrainConfig) -> Path:
    """``--output`` must be writable now, not after the last step; and a new run must not
    overwrite the checkpoint of an earlier one (``--resume`` continues it instead)."""
    checkpoint = check_can_write(Path(config.output) / "checkpoint", "--output", folder=True)
    # (a save cut off between its two renames leaves the earlier checkpoint at checkpoint.old)
    if (checkpoint.exists() or previous_checkpoint(checkpoint)) and not config.resume:
        raise ValueError(
            f"--output {config.output} already holds the checkpoint of an earlier run: add "
            "--resume to continue it, or choose another --output to start afresh."
        )
    return checkpoint


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


def progress_from(data, path: Path) -> Progress:
    """The ``Progress`` saved in a checkpoint's ``training`` entry, or a ``CheckpointError``
    naming the checkpoint when that entry is not one (written by other code, or edited)."""
    names = {f.name: f.type for f in fields(Progress)}
    if not isinstance(data, dict) or set(data) != set(names):
        raise CheckpointError(
            f"The checkpoint at {path} holds no pretrain progress (its training entry should have "
            f"{', '.join(names)}): it was not saved by helpers.pretrain. Choose another --output."
        )
    for name in ("step", "tokens_seen"):
        if isinstance(data[name], bool) or not isinstance(data[name], int) or data[name] < 0:
            raise CheckpointError(f"The checkpoint at {path} has a broken {name}: {data[name]!r}.")
    for name in ("train_losses", "eval_steps", "eval_train_losses", "eval_val_losses"):
        if not isinstance(data[name], list):
            raise CheckpointError(f"The checkpoint at {path} has a broken {name} (not a list).")
    return Progress(**data)


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
        if config.resume and self._checkpoint_to_resume() is not None:
            self._resume(self._checkpoint_to_resume())
        elif config.resume:
            self._print(f"No checkpoint in {self.output} yet: starting at step 0.")
        self.saved_step = self.progress.step  # what the checkpoint on disk holds
        self.loss = TrainingLoss(self.model, config.options, device, self._data_parallel())

    def _data_parallel(self):
        """The DDP wrapper that averages gradients over the processes (None for one process)."""
        if self.world.size == 1:
            return None
        from torch.nn.parallel import DistributedDataParallel

        # the attention masks are constants: no need to send them around at every forward
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(self.model, device_ids=ids, broadcast_buffers=False)

    def _checkpoint_to_resume(self) -> Path | None:
        """``checkpoint/``, or ``checkpoint.old`` where a save was cut off between its two
        renames (the previous complete checkpoint), or None when there is nothing to resume."""
        path = self.output / "checkpoint"
        return path if path.exists() else previous_checkpoint(path)

    def _resume(self, path: Path) -> None:
        if path.name.endswith(".old"):
            self._print(f"{path.with_suffix('')} is missing; resuming from {path}, the checkpoint "
                        "a cut-off save left.")
        meta = read_checkpoint_metadata(path)
        saved = meta.get("extra") or {}
        for key in ("batch_size", "corpus", "seed", "train_ratio"):
            if key in saved and saved[key] != getattr(self.config, key):
                raise ValueError(
                    f"The checkpoint at {path} was trained with {key}={saved[key]!r}, this run "
                    f"has {getattr(self.config, key)!r}: it cannot continue the same run. "
                    "Use the same settings or another --output."
                )
        progress = progress_from(meta.get("training"), path)  # checked before the model changes
        load_checkpoint(path, self.model, self.optimizer, map_location=self.device)
        self.progress = progress
        self._print(f"Resuming from {path} after step {self.progress.step}.")

    # --- the loop ------------------------------------------------------------------------------

    def run(self) -> Progress:
        """Train to the last step, then write the final files. Whatever stops it early
        (Ctrl-C, a NaN loss, a full disk, an error), the steps done are saved first."""
        try:
            self._train()
        except BaseException:
            self._save_if_behind()
            raise
        self.finish()
        return self.progress

    def _save_if_behind(self) -> None:
        """Save the steps the checkpoint on disk does not hold yet; never hide the error
        that brought us here, so a failure to save is only reported."""
        if not self.world.is_main or self.progress.step <= self.saved_step:
            return
        try:
            self.save_checkpoint()
        except Exception as err:  # noqa: BLE001 (e.g. the disk that just failed is still full)
            print(f"pretrain: could not save step {self.progress.step}: {one_line(err)}",
                  file=sys.stderr, flush=True)

    def _train(self) -> None:
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
            with interrupts_deferred():  # the update and the counters that record it, or neither
                self.optimizer.step()
                progress.train_losses.append(loss)
                progress.tokens_seen += config.batch_size * config.model["context_length"]
                progress.step += 1
                progress.train_seconds = seconds_before + time.perf_counter() - started
            last = progress.step == self.total_steps
            if progress.step % config.eval_freq == 0 or last:
                self.evaluate()
            if last or (config.checkpoint_every and progress.step % config.checkpoint_every == 0):
                self.save_checkpoint()

    def train_step(self, inputs, targets, step: int) -> float:
        """The gradients of one step and its loss (the mean over all processes); the caller
        takes the optimizer step, so a NaN loss is caught before it reaches the weights."""
        # Dropout draws from a generator seeded by step and rank: a resumed run draws the
        # same numbers as an uninterrupted one, without saving any generator state.
        torch.manual_seed(self.config.seed + 7_919 * step + self.world.rank)
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(inputs, targets)
        loss.backward()  # under DDP, this also averages the gradients of all processes
        mean = mean_over_processes(loss.detach(), self.world)
        if not math.isfinite(mean):  # every process sees the same mean: all stop together
            raise TrainingDiverged(self._diverged_message(mean, step))
        return mean

    def _diverged_message(self, loss: float, step: int) -> str:
        kept = (f"the checkpoint in {self.output / 'checkpoint'} keeps step {step}, the last "
                "good one" if step else "no step was good, so nothing was saved")
        return (
            f"The model's outputs are NaN (diverged training?): the loss of step {step + 1} is "
            f"{loss}; {kept}. Lower --lr (now {self.config.lr:g}) and start again, or continue "
            "with --resume and a lower --lr."
        )

    def evaluate(self) -> None:
        """Rank 0 only: the book's losses over the first ``eval_iter`` batches of each part."""
        if not self.world.is_main:
            return
        progress = self.progress
        train_loss = self._mean_loss(self.train_data)
        val_loss = self._mean_loss(self.val_data)
        with interrupts_deferred():  # the three lists stay the same length
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
            # Ctrl-C waits for the save: interrupted, the last steps would have no checkpoint
            with interrupts_deferred():
                save_checkpoint(
                    self.output / "checkpoint", self.model, self.optimizer,
                    step=self.progress.step, config=self.config.model,
                    training=asdict(self.progress), extra=self._run_facts(),
                )
                self.saved_step = self.progress.step

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
    check_values(config)  # a config built in Python skips parse_config's checks
    check_batch(config, world)  # before joining: a clear error instead of a hang
    device = choose_device(config, world)
    if world.is_main:
        check_output(config)
    start_processes(world, device)
    finished = False
    try:
        progress = PretrainRun(config, world, device).run()
        finished = True
        return progress
    finally:
        stop_processes(world, finished)


def main(argv: list[str] | None = None) -> int:
    """The command: 0 when done; 2 with one line on stderr for a user's mistake (flags, files,
    settings, a corpus that cannot be had, a corrupt checkpoint, a diverged run); 130 after
    Ctrl-C, with the steps done saved and the command that continues them."""
    argv = sys.argv[1:] if argv is None else list(argv)
    config, world = None, World()
    try:
        world = World.from_env()
        check_settings()
        config = parse_config(argv)
        pretrain(config, world)
    except KeyboardInterrupt:
        _say(world, f"interrupted; {_saved_state(config)} {_resume_hint(argv, world)}")
        return 130
    except (ValueError, DataError, OSError, _out_of_memory()) as err:
        _say(world, f"error: {one_line(err)}")
        return 2
    return 0


def _say(world: World, line: str) -> None:
    rank = f" (rank {world.rank})" if world.size > 1 else ""
    print(f"pretrain{rank}: {line}", file=sys.stderr, flush=True)


def _out_of_memory() -> type[BaseException]:
    """Running out of GPU memory is a size to change, not a bug (its message says so)."""
    return getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


def _saved_state(config: PretrainConfig | None) -> str:
    """What the interrupted run left on disk, in a few words."""
    checkpoint = Path(config.output) / "checkpoint" if config is not None else None
    try:
        step = read_checkpoint_metadata(checkpoint)["step"] if checkpoint else None
    except (ValueError, OSError):  # no checkpoint there (yet)
        step = None
    if step is None:
        return "no step was finished, so nothing was saved."
    return f"the checkpoint in {checkpoint} holds step {step}."


def _resume_hint(argv: list[str], world: World) -> str:
    if world.size > 1:
        return "To continue, run the same torchrun command with --resume."
    flags = argv if "--resume" in argv else [*argv, "--resume"]
    return f"To continue: python -m helpers.pretrain {shlex.join(flags)}"


if __name__ == "__main__":
    sys.exit(main())
