"""Where the notebooks run: device choice, seeding, run-size profiles, Colab detection, and
two guards every loop uses: ``eval_mode(model)`` and ``interrupts_deferred()``, and
``model_device(model)``.

Every notebook starts with ``profile = runtime.active_profile()`` and reads the sizes of its
models and training runs from that one object, so the same notebook runs in seconds on CI
(``smoke``), in minutes on a laptop (``cpu``) and at the book's full size on a GPU (``gpu``).
"""

from __future__ import annotations

import os
import platform
import random
import signal
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass, fields

import torch

from .data import SettingError, check_data_settings

PROFILE_ENV = "LLM_PROFILE"
DEVICE_ENV = "LLM_DEVICE"
DEVICE_TYPES = ("cpu", "cuda", "mps")


@dataclass(frozen=True)
class Profile:
    """The sizes one profile uses. Add a field here when a notebook needs a new knob."""

    name: str
    description: str
    # 01_tokenizing: vocabulary size of the BPE tokenizer trained from scratch on the-verdict.
    bpe_vocab_size: int
    # 01_tokenizing: how many characters of tinyshakespeare the larger BPE demo trains on.
    bpe_corpus_chars: int
    # 06_pretraining: the book's run on the-verdict, as changes to GPT_CONFIG_124M, and epochs.
    verdict_config: dict
    verdict_epochs: int
    # 06_pretraining: the longer run on tinyshakespeare that saves the base model notebooks
    # 07-09 fall back to when GPT-2's weights cannot be downloaded.
    base_config: dict
    base_corpus_chars: int
    base_epochs: int
    base_batch_size: int
    # 08_finetuning_for_classification: epochs of each fine-tuning run on the spam data.
    classify_epochs: int
    # 09_finetuning_to_follow_instructions: the GPT-2 to start from, epochs, response length.
    instruct_gpt2_size: str
    instruct_epochs: int
    instruct_max_new_tokens: int


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        description="tiny sizes for CI: every notebook runs in well under a minute",
        bpe_vocab_size=300,
        bpe_corpus_chars=20_000,
        verdict_config=dict(context_length=32, emb_dim=32, n_heads=2, n_layers=2),
        verdict_epochs=1,
        base_config=dict(context_length=32, emb_dim=32, n_heads=2, n_layers=2),
        base_corpus_chars=20_000,
        base_epochs=1,
        base_batch_size=4,
        classify_epochs=1,
        instruct_gpt2_size="gpt2-small (124M)",
        instruct_epochs=1,
        instruct_max_new_tokens=20,
    ),
    "cpu": Profile(
        name="cpu",
        description="laptop CPU: faithful to the book where minutes allow",
        bpe_vocab_size=1_000,
        bpe_corpus_chars=300_000,
        verdict_config=dict(context_length=256),  # the book's model: 124M config, context 256
        verdict_epochs=10,
        # The head is tied to the token embedding (06 section 7): one 50,257-row table, not
        # two, leaves room for six wider blocks. No dropout: two epochs hardly overfit.
        base_config=dict(context_length=128, emb_dim=192, n_heads=6, n_layers=6, drop_rate=0.0),
        base_corpus_chars=1_115_394,
        base_epochs=2,
        base_batch_size=8,
        classify_epochs=5,
        instruct_gpt2_size="gpt2-small (124M)",
        instruct_epochs=2,
        instruct_max_new_tokens=100,
    ),
    "gpu": Profile(
        name="gpu",
        description="CUDA or MPS: the book's full settings",
        bpe_vocab_size=1_000,
        bpe_corpus_chars=1_115_394,
        verdict_config=dict(context_length=256),
        verdict_epochs=10,
        base_config=dict(context_length=256),  # GPT-2 small's shape
        base_corpus_chars=1_115_394,
        base_epochs=3,
        base_batch_size=8,
        classify_epochs=5,
        instruct_gpt2_size="gpt2-medium (355M)",
        instruct_epochs=2,
        instruct_max_new_tokens=256,
    ),
}


def in_colab() -> bool:
    """True inside Google Colab (its runtime always imports ``google.colab``)."""
    return "google.colab" in sys.modules


def _mps_is_trustworthy() -> bool:
    """MPS gave wrong results for some ops (e.g. in-place softmax, large matmuls) before
    PyTorch 2.4 and macOS 14; older combinations silently train worse, so we skip them."""
    mps = getattr(torch.backends, "mps", None)
    if mps is None or not mps.is_available():
        return False
    torch_major_minor = tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2])
    mac_version = platform.mac_ver()[0] or "0"
    mac_major = int(mac_version.split(".")[0])
    return torch_major_minor >= (2, 4) and mac_major >= 14


def parse_device(value: str, name: str) -> torch.device:
    """``value`` as a device of a type this project runs on, else a ``SettingError`` naming
    the setting ``name`` it came from (``LLM_DEVICE``, ``--device``)."""
    try:
        device = torch.device(str(value).strip().lower())
    except RuntimeError:
        device = None
    if device is None or device.type not in DEVICE_TYPES:
        raise SettingError(
            f"{name}={value!r} is not a device; use cpu, cuda, cuda:N (N: the GPU's number) "
            "or mps."
        )
    return device


def check_device(value: str, name: str) -> torch.device:
    """``parse_device``, and the device must be on this machine: asking for a GPU that is
    not there fails now, in one sentence, rather than at the first tensor moved to it."""
    device = parse_device(value, name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (device.index or 0) >= count:
            found, use = (f"{count} CUDA GPU(s)", "cpu or cuda:0") if count else ("no CUDA GPU", "cpu")
            raise SettingError(f"{name}={value!r}: this machine has {found}; use {use}.")
    if device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise SettingError(f"{name}={value!r}: MPS (Apple silicon) is not available here; use cpu.")
    return device


def get_device() -> torch.device:
    """CUDA if present, then MPS where it is known to be correct, else CPU.

    ``LLM_DEVICE=cpu`` (or ``cuda:1``, ``mps``) overrides the choice; a device that is not
    on this machine is refused with a ``SettingError``.
    """
    override = os.environ.get(DEVICE_ENV, "").strip()
    if override:
        return check_device(override, DEVICE_ENV)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_is_trustworthy():
        return torch.device("mps")
    return torch.device("cpu")


def default_profile_name() -> str:
    """``gpu`` when an accelerator is there (or ``LLM_DEVICE`` names one), else ``cpu``."""
    override = os.environ.get(DEVICE_ENV, "").strip()
    device = parse_device(override, DEVICE_ENV) if override else get_device()
    return "cpu" if device.type == "cpu" else "gpu"


def active_profile() -> Profile:
    """The profile named by ``LLM_PROFILE``, or the default for this machine."""
    name = os.environ.get(PROFILE_ENV, "").strip().lower() or default_profile_name()
    if name not in PROFILES:
        raise SettingError(
            f"{PROFILE_ENV}={name!r} is not a profile; use one of {', '.join(PROFILES)} "
            f"(or unset it to get {default_profile_name()!r} on this machine)."
        )
    return PROFILES[name]


def check_settings() -> None:
    """Read every ``LLM_*`` setting now and refuse a bad one, naming it and what it takes:
    the profile, the device, the offline switch, the mirror and the data folder. The
    commands call it first, and ``describe()`` (the top of every notebook) does too."""
    active_profile()
    get_device()
    check_data_settings()


def set_seed(seed: int = 123) -> None:
    """Seed Python, NumPy and PyTorch (all devices) so a cell gives the same numbers twice."""
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:  # numpy is optional for torch; nothing to seed then
        pass
    torch.manual_seed(seed)  # also seeds CUDA and MPS generators


def describe() -> str:
    """One line for the top of a notebook: profile, device, versions."""
    check_settings()
    profile = active_profile()
    source = "from LLM_PROFILE" if os.environ.get(PROFILE_ENV) else "default for this machine"
    where = "Colab" if in_colab() else platform.system() or "unknown OS"
    return (
        f"profile: {profile.name} ({source}; {profile.description}) | "
        f"device: {get_device()} | torch {torch.__version__} | Python "
        f"{platform.python_version()} on {where}"
    )


def profile_table() -> str:
    """The profiles side by side, as plain text, for the README and notebooks."""
    names = [f.name for f in fields(Profile) if f.name not in ("name", "description")]
    header = f"{'setting':<24}" + "".join(f"{p:>14}" for p in PROFILES)
    rows = [header]
    for field_name in names:
        values = [_short(getattr(p, field_name)) for p in PROFILES.values()]
        rows.append(f"{field_name:<24}" + "".join(f"{v:>14}" for v in values))
    return "\n".join(rows)


def _short(value) -> str:
    """A profile value in a few characters: numbers with separators, configs by their size."""
    if isinstance(value, dict):
        if not value.keys() - {"context_length"}:
            return f"124M/ctx{value['context_length']}"
        return f"{value.get('n_layers', '')}x{value.get('emb_dim', '')}/ctx{value.get('context_length', '')}"
    if isinstance(value, str):
        return value.split(" (")[0]  # "gpt2-small (124M)" -> "gpt2-small"
    return f"{value:,}"



def model_device(model: torch.nn.Module, default="cpu") -> torch.device:
    """The device of ``model``'s parameters (``default`` for a model without any)."""
    return next((p.device for p in model.parameters()), torch.device(default))

@contextmanager
def eval_mode(model: torch.nn.Module):
    """Eval mode (no dropout) and no gradients inside; afterwards every submodule gets its own
    previous mode back (some may have been in eval mode on purpose, e.g. frozen parts)."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        for module, training in modes:
            module.training = training


@contextmanager
def interrupts_deferred(reraise: bool = True):
    """Hold back Ctrl-C (Jupyter's stop button) until the block is done, then raise it
    (or, with ``reraise=False``, drop it).

    Used around an optimizer step and the counters that record it: interrupted half-way,
    some weights would be updated and others not, and no checkpoint could describe that.
    Signals can only be caught in the main thread; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        # None: a handler installed outside Python; Python's own is the closest we can restore
        signal.signal(signal.SIGINT, signal.default_int_handler if previous is None else previous)
        if received and reraise:
            raise KeyboardInterrupt
