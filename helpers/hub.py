"""Phase 06 (book 5.5): where OpenAI's GPT-2 weights come from, and what to say when they cannot.

``download_gpt2(size)`` returns a local folder with ``config.json`` + ``model.safetensors``:

    1. ``$LLM_DATA_MIRROR/<repo name>/``   a classroom's USB stick (e.g. ``.../gpt2/``)
    2. the data folder                     where ``python -m helpers.prefetch`` puts them
    3. Hugging Face's cache                without touching the network
    4. a download of ``openai-community/gpt2*`` with ``huggingface_hub``

Offline (``LLM_OFFLINE``, ``HF_HUB_OFFLINE``), or when the hub does not answer within a few
seconds, it raises ``WeightsUnavailable`` with one sentence that says what to do instead.
Sizes have many spellings: ``resolve_gpt2_size("small") == "gpt2-small (124M)"``.
"""

from __future__ import annotations

import contextlib
import re
import socket
import urllib.parse
import urllib.request
from pathlib import Path

from .data import MIRROR_ENV, OFFLINE_ENV, DataError, cache_dir, env_flag, mirror_dir
from .model import GPT2_SIZES

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"

# Where each size lives on the Hugging Face hub (and, by its last part, in the mirror).
GPT2_REPOS = {
    "gpt2-small (124M)": "openai-community/gpt2",
    "gpt2-medium (355M)": "openai-community/gpt2-medium",
    "gpt2-large (774M)": "openai-community/gpt2-large",
    "gpt2-xl (1558M)": "openai-community/gpt2-xl",
}

CONNECT_TIMEOUT_S = 3.0  # an offline notebook should say so within seconds, not hang


class WeightsUnavailable(DataError):
    """Pretrained weights could not be found locally nor downloaded; the message says what to do."""


# ---------------------------------------------------------------------------------------------
# Names: sizes and their aliases
# ---------------------------------------------------------------------------------------------


def _size_aliases() -> dict[str, str]:
    """Every accepted spelling (lower case) -> the canonical size name."""
    aliases = {}
    for size, repo in GPT2_REPOS.items():
        short, params = re.fullmatch(r"(gpt2-\w+) \((\w+)\)", size).groups()
        for alias in (size, short, short.removeprefix("gpt2-"), params, repo, repo.split("/")[1]):
            aliases[alias.lower()] = size
    return aliases


_SIZE_ALIASES = _size_aliases()


def is_gpt2_size(name) -> bool:
    """Whether ``name`` spells a GPT-2 size ("small", "124M", "gpt2", ...), not a path."""
    return isinstance(name, str) and name.strip().lower() in _SIZE_ALIASES


def resolve_gpt2_size(name: str) -> str:
    """A GPT-2 size in any accepted spelling ("small", "124M", "gpt2", ...) -> its full name."""
    size = _SIZE_ALIASES.get(str(name).strip().lower())
    if size is None:
        raise ValueError(
            f"Unknown GPT-2 size {name!r}; choose one of {', '.join(GPT2_SIZES)} "
            "(short names work too: small, 124M, gpt2, medium, 355M, gpt2-large, xl, ...)."
        )
    return size


def gpt2_folder_name(size: str) -> str:
    """The folder a GPT-2 size has in a mirror or the data folder: the hub repo's last part."""
    return GPT2_REPOS[resolve_gpt2_size(size)].split("/")[1]


# ---------------------------------------------------------------------------------------------
# Finding the files: mirror, data folder, Hugging Face cache, download
# ---------------------------------------------------------------------------------------------


def download_gpt2(
    size: str = "gpt2-small (124M)",
    into: Path | None = None,
) -> Path:
    """The local folder holding ``model.safetensors`` (and ``config.json``) of a GPT-2 size.

    Looks in ``$LLM_DATA_MIRROR/<repo name>/`` first (a classroom's USB stick), then in the
    data folder (``python -m helpers.prefetch`` puts them there), then in Hugging Face's cache
    (no network), and only then downloads with ``huggingface_hub``, which shows a progress bar,
    caches, and checks the download against the hub's hashes. ``into`` downloads into that
    folder instead of the hub's cache (how ``python -m helpers.prefetch`` fills the data folder).
    Raises ``WeightsUnavailable`` (one sentence, within seconds) when none of that works.
    """
    size = resolve_gpt2_size(size)
    repo_id = GPT2_REPOS[size]
    for folder in (mirror_dir(), cache_dir()):
        if folder is not None and (folder / gpt2_folder_name(size) / WEIGHTS_FILE).is_file():
            return folder / gpt2_folder_name(size)
    with contextlib.suppress(*_hub_errors()):
        return _hub_folder(repo_id, local_files_only=True)

    reason = _offline_reason() or unreachable_reason()
    if reason is None:
        try:
            return _hub_folder(repo_id, local_files_only=False, local_dir=into)
        except _hub_errors() as err:
            reason = _describe_failure(err)
    raise WeightsUnavailable(_unavailable_message(size, reason))


def _hub_folder(repo_id: str, local_files_only: bool, local_dir: Path | None = None) -> Path:
    """Both files into (or from) the hub's cache, or into ``local_dir``: one folder either way."""
    from huggingface_hub import hf_hub_download  # imported late: only this path needs it

    where = {} if local_dir is None else {"local_dir": str(local_dir)}
    for filename in (CONFIG_FILE, WEIGHTS_FILE):  # the small file first: fails fast
        path = hf_hub_download(
            repo_id, filename, local_files_only=local_files_only,
            etag_timeout=CONNECT_TIMEOUT_S, **where,
        )
    return Path(path).parent


def _hub_errors() -> tuple[type[BaseException], ...]:
    """What a failed hub lookup can raise: its own errors and socket errors are ``OSError``s;
    the HTTP client's transport errors (timeouts, dropped connections) may not be."""
    errors: list[type[BaseException]] = [OSError]  # requests' errors are OSErrors too
    for client in ("httpx", "httpx2"):  # the clients of newer huggingface_hub versions
        with contextlib.suppress(ImportError, AttributeError):
            errors.append(__import__(client).HTTPError)
    return tuple(errors)


# ---------------------------------------------------------------------------------------------
# Offline: why the hub cannot be had, in one sentence
# ---------------------------------------------------------------------------------------------


def _offline_reason() -> str | None:
    """The offline switch that is set (ours or Hugging Face's), or None. All three are read
    with the one parser ``helpers.data.env_flag``: "false" is off for each, and a word that
    is neither yes nor no is refused, naming the variable."""
    for name in (OFFLINE_ENV, "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if env_flag(name):
            return f"{name} is set"
    return None


def unreachable_reason(timeout: float = CONNECT_TIMEOUT_S) -> str | None:
    """Why the hub cannot be reached, from one quick TCP connection, or None if it answers.

    huggingface_hub retries a dead network for about 20 s before giving up; this check says
    "offline" within ``timeout``. Behind a proxy only the proxy knows, so the hub decides.
    """
    if urllib.request.getproxies().get("https"):
        return None
    from huggingface_hub import constants

    url = urllib.parse.urlsplit(constants.ENDPOINT)
    host = url.hostname or "huggingface.co"
    try:
        socket.create_connection((host, url.port or 443), timeout=timeout).close()
    except socket.gaierror:
        return f"{host} cannot be resolved, no internet"
    except TimeoutError:  # socket.timeout is an alias of it since Python 3.10
        return f"{host} did not answer within {timeout:g} s"
    except OSError as err:
        return f"{host} is unreachable: {err.strerror or err}"
    return None


def _describe_failure(err: BaseException) -> str:
    """A hub error in a few words, for the one-sentence message."""
    status = getattr(getattr(err, "response", None), "status_code", None)
    if status is not None:
        return f"the hub answered HTTP {status}"
    if isinstance(err, TimeoutError) or "timeout" in type(err).__name__.lower():
        return "the connection timed out"
    if type(err).__name__ in ("LocalEntryNotFoundError", "OfflineModeIsEnabled"):
        return "no connection to the hub"
    # the message must stay one sentence: keep the first line, up to its first full stop
    return re.split(r"\.\s|\n", f"{type(err).__name__}: {err}")[0][:120].rstrip(".")


def _unavailable_message(size: str, reason: str) -> str:
    """The one sentence ``WeightsUnavailable`` says: why, and where to put the files instead."""
    folder = gpt2_folder_name(size)
    # named through the variable, not expanded: the sentence ends up in saved notebook outputs
    where = f"${MIRROR_ENV}/{folder}" + ("" if mirror_dir() else f" with {MIRROR_ENV} set")
    return (
        f"The {size} weights ({GPT2_REPOS[size]}) could not be downloaded ({reason}), so pass "
        f"load_gpt2 a local folder in Hugging Face layout ({CONFIG_FILE} + {WEIGHTS_FILE}) "
        f"or put that folder at {where}."
    )
