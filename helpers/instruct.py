"""Phase 09, instruction fine-tuning: teach a pretrained GPT to follow instructions.

The book's chapter 7, step by step::

    load_instruction_data()            1,100 {instruction, input, output} entries, validated
    load_instruction_splits()          (train, test, val) = 935 / 110 / 55, the book's split
    format_input(entry)                the Alpaca-style prompt; format_input_phi3, Phi-3-style
    InstructionDataset, custom_collate_fn, instruction_dataloaders
                                       token ids, padded batches, targets with -100 where the
                                       loss must ignore them (padding; the prompt if masked)
    generate_response(model, tokenizer, entry)      the model's answer, prompt stripped
    rouge_l, reference_perplexity, score_responses  offline scores, no server needed
    judge_responses(entries)           the book's LLM-as-judge, via a local Ollama server

Batches (``custom_collate_fn``, the book's rule): each sequence gets one ``pad_token_id`` (the
end-of-text token) and is padded with it to the longest in the batch plus one; inputs drop
the last position, targets the first. In the targets every padding token after the first
becomes ``ignore_index``: the model learns to end its answer, but not to predict padding.
Both are then cut to ``allowed_max_length`` tokens if given. With ``mask_prompt=True`` each
item is ``(ids, prompt_length)`` (``InstructionDataset(..., mask_prompt=True)``) and the
targets that predict prompt tokens become ``ignore_index`` too, so only the response (and
its end) is learnt. Unlike the book's, the padding is found by position, not by value, so
an end token inside a text is still learnt.

Training reuses pretraining's loop (``helpers.training_run.train_model_resumable``, the book's
``train_model_simple`` with checkpoints and a dashboard): the loaders here yield the same
(inputs, targets) batches as pretraining, and ``cross_entropy`` skips targets of -100.

Usage::

    train_loader, val_loader, test_loader = instruction_dataloaders(tokenizer, batch_size=8)
    train_model_simple(model, train_loader, val_loader, optimizer, device, num_epochs=2,
                       eval_freq=5, eval_iter=5, start_context=format_input(val_data[0]),
                       tokenizer=tokenizer)
    print(generate_response(model, tokenizer, test_data[0]))
"""

from __future__ import annotations

import json
import math
import re
import urllib.error
import urllib.parse
import urllib.request
import warnings
from functools import partial
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .atomic import write_json_atomically
from .data import fetch
from .generate import generate, generated_tokens
from .runtime import eval_mode, model_device
from .validate import check_can_write, check_int, did_you_mean

__all__ = [
    "PAD_TOKEN_ID",
    "IGNORE_INDEX",
    "REQUIRED_KEYS",
    "validate_instruction_data",
    "load_instruction_data",
    "load_instruction_splits",
    "format_input",
    "format_input_phi3",
    "response_prefix",
    "prompt_text",
    "format_example",
    "InstructionDataset",
    "custom_collate_fn",
    "instruction_dataloaders",
    "generate_response",
    "generate_responses",
    "save_responses",
    "rouge_l",
    "reference_perplexity",
    "score_responses",
    "OllamaUnavailable",
    "ollama_is_running",
    "query_ollama",
    "judge_prompt",
    "parse_score",
    "judge_responses",
]

PAD_TOKEN_ID = 50256  # GPT-2's <|endoftext|>: the end of a response, and the padding
IGNORE_INDEX = -100  # torch.nn.functional.cross_entropy skips targets with this value
REQUIRED_KEYS = ("instruction", "input", "output")
STYLES = ("alpaca", "phi3")

# ---------------------------------------------------------------------------------------------
# The data set
# ---------------------------------------------------------------------------------------------


def _entry_problems(entry) -> list[str]:
    """What is wrong with one entry, in words; an empty list if nothing."""
    if not isinstance(entry, dict):
        return [f"is a {type(entry).__name__}, not a dict"]
    problems = [f"has no {key!r}" for key in REQUIRED_KEYS if key not in entry]
    problems += [
        f"{key!r} is a {type(entry[key]).__name__}, not a string"
        for key in REQUIRED_KEYS
        if key in entry and not isinstance(entry[key], str)
    ]
    return problems


def validate_instruction_data(data) -> list[dict]:
    """Return ``data`` if it is a list of dicts with string instruction, input and output
    (extra keys are allowed); otherwise raise a ``ValueError`` naming every bad entry by
    index. A bad entry is never skipped silently: it would shift the book's split."""
    if not isinstance(data, list):
        raise ValueError(
            f"Instruction data must be a list of entries, got {type(data).__name__}: the "
            'file should hold [{"instruction": ..., "input": ..., "output": ...}, ...].'
        )
    bad = [(i, problems) for i, entry in enumerate(data) if (problems := _entry_problems(entry))]
    if bad:
        lines = [f"  entry {i}: {'; '.join(problems)}" for i, problems in bad[:20]]
        more = f"\n  ... and {len(bad) - 20} more" if len(bad) > 20 else ""
        raise ValueError(
            f"{len(bad)} of {len(data)} instruction entries are malformed (each needs the "
            f"string keys {', '.join(REQUIRED_KEYS)}):\n" + "\n".join(lines) + more
        )
    return data


def load_instruction_data(path=None) -> list[dict]:
    """The book's 1,100 instruction examples (``instruction-data.json``), validated.

    ``path``: read another JSON file of the same shape instead of the downloaded one. A file
    that is missing, not JSON, or not a list of entries is refused with its name.
    """
    path = Path(path) if path is not None else fetch("instruction-data.json")
    if not path.is_file():
        raise FileNotFoundError(f"No instruction data file at {path}.")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{path} is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}): "
            "was it cut short or edited by hand? Download or write it again."
        ) from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a UTF-8 text file; save it as UTF-8 JSON.") from None
    try:
        return _check_not_empty(validate_instruction_data(data))
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def _check_not_empty(data: list) -> list:
    """A data set to split must hold entries (one split of it may still be empty)."""
    if not data:
        raise ValueError("Instruction data holds no entries: there is nothing to train on.")
    return data


def load_instruction_splits(data=None) -> tuple[list[dict], list[dict], list[dict]]:
    """(train, test, val), the book's rule: the first 85%, the next 10%, the rest.

    No shuffling, as in the book, so the notebook's examples match its pages. For the
    book's 1,100 entries that is 935 / 110 / 55.
    """
    data = load_instruction_data() if data is None else _check_not_empty(
        validate_instruction_data(data)
    )
    train_end = int(len(data) * 0.85)
    test_end = train_end + int(len(data) * 0.1)
    return data[:train_end], data[train_end:test_end], data[test_end:]


# ---------------------------------------------------------------------------------------------
# Prompt styles
# ---------------------------------------------------------------------------------------------


def format_input(entry: dict) -> str:
    """The book's Alpaca-style prompt: a preamble, the instruction, the input if any."""
    instruction_text = (
        "Below is an instruction that describes a task. "
        "Write a response that appropriately completes the request."
        f"\n\n### Instruction:\n{entry['instruction']}"
    )
    input_text = f"\n\n### Input:\n{entry['input']}" if entry["input"] else ""
    return instruction_text + input_text


def format_input_phi3(entry: dict) -> str:
    """The Phi-3-style prompt of the book's exercise 7.1 (real Phi-3 adds <|end|>): fewer tokens."""
    input_text = f"\n{entry['input']}" if entry["input"] else ""
    return f"<|user|>\n{entry['instruction']}{input_text}"


def _check_style(style: str) -> str:
    if not isinstance(style, str) or style not in STYLES:
        hint = did_you_mean(style.lower(), STYLES) if isinstance(style, str) else ""
        raise ValueError(f"style must be one of {STYLES}, got {style!r}{hint}.")
    return style


def response_prefix(style: str = "alpaca") -> str:
    """What comes between the prompt and the response text."""
    return "\n\n### Response:\n" if _check_style(style) == "alpaca" else "\n<|assistant|>:\n"


def prompt_text(entry: dict, style: str = "alpaca") -> str:
    """The prompt of one entry in the given style (without the response header)."""
    return format_input(entry) if _check_style(style) == "alpaca" else format_input_phi3(entry)


def format_example(entry: dict, style: str = "alpaca") -> str:
    """Prompt + response header + the reference output: one training text."""
    return prompt_text(entry, style) + response_prefix(style) + entry["output"]


# ---------------------------------------------------------------------------------------------
# Dataset and batches
# ---------------------------------------------------------------------------------------------


def _common_prefix_length(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


class InstructionDataset(Dataset):
    """Each entry's full text (prompt, header, response) encoded once, as a list of ids.

    ``prompt_lengths[i]``: how many leading tokens of ``encoded_texts[i]`` are the prompt and
    the response header. Encoded on its own the prompt could end in a different token than
    inside the full text (BPE merges across the border), so it is the length of the prefix the
    two share. With ``mask_prompt=True`` an item is ``(ids, prompt_length)``, for
    ``custom_collate_fn(..., mask_prompt=True)``; otherwise just the ids, as in the book.
    """

    def __init__(self, data, tokenizer, style: str = "alpaca", mask_prompt: bool = False):
        self.data = validate_instruction_data(data)
        self.style = _check_style(style)
        self.mask_prompt = mask_prompt
        self.encoded_texts: list[list[int]] = []
        self.prompt_lengths: list[int] = []
        for entry in data:
            full = tokenizer.encode(format_example(entry, style))
            prompt = tokenizer.encode(prompt_text(entry, style) + response_prefix(style))
            self.encoded_texts.append(full)
            self.prompt_lengths.append(_common_prefix_length(prompt, full))

    def __getitem__(self, index):
        if self.mask_prompt:
            return self.encoded_texts[index], self.prompt_lengths[index]
        return self.encoded_texts[index]

    def __len__(self) -> int:
        return len(self.data)


def collate_items(batch, mask_prompt: bool) -> tuple[list[list[int]], list[int | None]]:
    """(token-id lists, prompt lengths) of a batch: items are ``(ids, prompt_length)`` with
    ``mask_prompt``, plain ids without (their prompt lengths ``None``)."""
    if len(batch) == 0:
        raise ValueError("The batch is empty: a collate function needs at least one item.")
    if not mask_prompt:
        return [list(item) for item in batch], [None] * len(batch)
    if not all(isinstance(item, tuple) and len(item) == 2 for item in batch):
        raise ValueError(
            "mask_prompt=True needs items of (token_ids, prompt_length); build the dataset "
            "with InstructionDataset(..., mask_prompt=True)."
        )
    return [list(ids) for ids, _ in batch], [prompt_length for _, prompt_length in batch]


def custom_collate_fn(
    batch,
    pad_token_id: int = PAD_TOKEN_ID,
    ignore_index: int = IGNORE_INDEX,
    allowed_max_length: int | None = None,
    device="cpu",
    mask_prompt: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-id lists -> (inputs, targets): padded with end tokens, targets shifted by one,
    ``ignore_index`` where the loss must not look (the module docstring has the rule)."""
    sequences, prompt_lengths = collate_items(batch, mask_prompt)
    batch_max_length = max(len(seq) + 1 for seq in sequences)  # room for one end token
    inputs_lst, targets_lst = [], []
    for seq, prompt_length in zip(sequences, prompt_lengths):
        padded = seq + [pad_token_id] * (batch_max_length - len(seq))
        inputs = torch.tensor(padded[:-1])
        targets = torch.tensor(padded[1:])
        targets[len(seq) :] = ignore_index  # learn the first end token, not the padding
        if mask_prompt:  # targets[j] is token j + 1: those before the response are prompt
            targets[: max(prompt_length - 1, 0)] = ignore_index
        if allowed_max_length is not None:
            inputs, targets = inputs[:allowed_max_length], targets[:allowed_max_length]
        inputs_lst.append(inputs)
        targets_lst.append(targets)
    return torch.stack(inputs_lst).to(device), torch.stack(targets_lst).to(device)


def instruction_dataloaders(
    tokenizer,
    batch_size: int = 8,
    allowed_max_length: int = 1024,
    device="cpu",
    mask_prompt: bool = False,
    style: str = "alpaca",
    seed: int = 123,
    data=None,
    num_workers: int = 0,
) -> tuple[DataLoader, DataLoader, DataLoader]:
    """(train_loader, val_loader, test_loader) over the book's split.

    The training loader shuffles (with its own generator seeded with ``seed``, so the global
    random state is left alone) and drops an incomplete last batch; the others keep order
    and every example. ``data``: entries to split instead of the downloaded file.
    """
    check_int(batch_size, "batch_size", minimum=1)
    if allowed_max_length is not None:
        check_int(allowed_max_length, "allowed_max_length", minimum=2)
    check_int(num_workers, "num_workers", minimum=0)
    check_int(seed, "seed")
    _check_style(style)
    train_data, test_data, val_data = load_instruction_splits(data)
    collate = partial(
        custom_collate_fn,
        allowed_max_length=allowed_max_length,
        device=device,
        mask_prompt=mask_prompt,
    )

    def loader(entries, train: bool) -> DataLoader:
        return DataLoader(
            InstructionDataset(entries, tokenizer, style, mask_prompt),
            batch_size=batch_size,
            collate_fn=collate,
            shuffle=train,
            drop_last=train,
            num_workers=num_workers,
            generator=torch.Generator().manual_seed(seed) if train else None,
        )

    return loader(train_data, True), loader(val_data, False), loader(test_data, False)


# ---------------------------------------------------------------------------------------------
# Generating responses
# ---------------------------------------------------------------------------------------------


def _context_size(model: nn.Module, context_size: int | None) -> int:
    if context_size is not None:
        return check_int(context_size, "context_size", minimum=1)
    pos_emb = getattr(model, "pos_emb", None)
    if pos_emb is None:
        raise ValueError("Pass context_size: the model has no pos_emb to read it from.")
    return pos_emb.weight.shape[0]


def _strip_header(text: str, style: str) -> str:
    """The response without the header the model may have written before it."""
    header = response_prefix(style).strip()
    text = text.strip()
    if text.startswith(header):
        text = text[len(header):]
    return text.strip()


def generate_response(
    model: nn.Module,
    tokenizer,
    entry: dict,
    max_new_tokens: int = 256,
    context_size: int | None = None,
    style: str = "alpaca",
    temperature: float = 0.0,
    top_k: int | None = None,
    device=None,
    eos_id: int = PAD_TOKEN_ID,
) -> str:
    """The model's response to one entry: generated after the prompt (as the book does,
    without the header, which a fine-tuned model writes itself), up to the end token; the
    header is removed and the text stripped. Greedy by default; sampling uses the global
    random state, so seed it to repeat. ``device``: default the model's."""
    _check_entry(entry)
    device = device or model_device(model)
    context_size = _context_size(model, context_size)
    ids = torch.tensor([tokenizer.encode(prompt_text(entry, style))], device=device)
    out = generate(
        model, ids, max_new_tokens, context_size, temperature, top_k, eos_id=eos_id
    )
    # generate crops a prompt longer than the context; the new tokens start after the crop
    prompt_length = min(ids.shape[1], context_size)
    (new_ids,) = generated_tokens(out, prompt_length, eos_id)
    return _strip_header(tokenizer.decode(new_ids), style)


PROMPT_KEYS = ("instruction", "input")  # what a prompt is made of; no output needed


def _check_entry(entry, where: str = "The entry") -> None:
    """Refuse an entry a prompt cannot be made of (``format_input`` would fail deep inside)."""
    problems = [p for p in _entry_problems(entry) if "'output'" not in p]
    if problems:
        raise ValueError(
            f"{where} {entry!r:.80} {'; '.join(problems)}: a prompt needs the string keys "
            f"{', '.join(PROMPT_KEYS)}."
        )


def generate_responses(model, tokenizer, entries, progress: bool = False, **kwargs) -> list[dict]:
    """Copies of ``entries``, each with a ``"model_response"``; ``kwargs`` go to
    ``generate_response``. ``progress=True`` shows a tqdm bar (the book's loop)."""
    entries = list(entries)
    for i, entry in enumerate(entries):  # a bad entry fails now, not after the others
        _check_entry(entry, f"Entry {i},")
    if progress:
        from tqdm.auto import tqdm

        entries = tqdm(entries, desc="responses")
    return [
        {**entry, "model_response": generate_response(model, tokenizer, entry, **kwargs)}
        for entry in entries
    ]


def save_responses(entries, path) -> Path:
    """Write entries as indented JSON; atomically, so an interrupted run never leaves half a
    file where a previous, complete one was. A path that cannot be written, or entries that
    are not plain JSON (a tensor left in a response), are refused naming the path."""
    check_can_write(path, "save_responses path")
    try:
        return write_json_atomically(path, entries, indent=4)
    except (TypeError, ValueError) as err:  # nothing was written: the target is as it was
        raise ValueError(
            f"Cannot save the responses to {path}: {err}. Entries may hold only text, numbers, "
            "lists and dicts (turn tensors into text with str() or .tolist())."
        ) from None


# ---------------------------------------------------------------------------------------------
# Offline scores
# ---------------------------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def _lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence, one row of the DP table at a time."""
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1: precision and recall of the longest common word subsequence.

    Words are lowercase runs of letters and digits (punctuation ignored). Two empty texts
    score 1, one empty text 0.
    """
    for name, text in (("candidate", candidate), ("reference", reference)):
        if not isinstance(text, str):
            raise ValueError(f"rouge_l compares texts: the {name} is a {type(text).__name__}.")
    cand, ref = _words(candidate), _words(reference)
    if not cand or not ref:
        return float(cand == ref)
    lcs = _lcs_length(cand, ref)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(cand), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def reference_perplexity(
    model: nn.Module,
    tokenizer,
    entries,
    device=None,
    style: str = "alpaca",
    batch_size: int = 8,
    context_size: int | None = None,
) -> float:
    """exp(mean cross-entropy of the reference responses given their prompts).

    Only the response tokens and the end token count (the prompt is masked, as in
    ``mask_prompt=True`` training). Lower is better; 1 would be a model certain of every
    reference token. No generation, no judge: it needs nothing but the model.
    """
    check_int(batch_size, "batch_size", minimum=1)
    device = device or model_device(model)
    context_size = _context_size(model, context_size)
    dataset = InstructionDataset(entries, tokenizer, style, mask_prompt=True)
    collate = partial(
        custom_collate_fn, allowed_max_length=context_size, device=device, mask_prompt=True
    )
    total_loss, total_tokens = 0.0, 0
    with eval_mode(model):
        for inputs, targets in DataLoader(dataset, batch_size=batch_size, collate_fn=collate):
            logits = model(inputs)
            total_loss += nn.functional.cross_entropy(
                logits.flatten(0, 1).float(), targets.flatten(), reduction="sum"
            ).item()
            total_tokens += int((targets != IGNORE_INDEX).sum())
    if total_tokens == 0:
        raise ValueError("No response tokens to score: empty entries, or all cut by the context.")
    return math.exp(total_loss / total_tokens)


def score_responses(entries, key: str = "model_response") -> dict:
    """Offline summary of generated responses against the references (``"output"``):
    mean ROUGE-L, the share that match exactly (case and spaces aside), mean lengths."""
    if not entries:
        raise ValueError("score_responses needs at least one entry.")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(k), str) for k in (key, "output")
        ):
            raise ValueError(
                f"Entry {i} has no text under {key!r} and 'output' to compare ({entry!r:.80}): "
                "score the output of generate_responses."
            )
    scores = [rouge_l(e[key], e["output"]) for e in entries]
    exact = [_words(e[key]) == _words(e["output"]) for e in entries]
    return {
        "n": len(entries),
        "rouge_l": sum(scores) / len(scores),
        "exact_match": sum(exact) / len(exact),
        "mean_response_words": sum(len(_words(e[key])) for e in entries) / len(entries),
        "mean_reference_words": sum(len(_words(e["output"])) for e in entries) / len(entries),
    }


# ---------------------------------------------------------------------------------------------
# LLM as a judge, through a local Ollama server
# ---------------------------------------------------------------------------------------------

OLLAMA_URL = "http://localhost:11434"
OLLAMA_CHAT_URL = OLLAMA_URL + "/api/chat"


class OllamaUnavailable(RuntimeError):
    """No Ollama server answered; the message says how to start one."""


def _unavailable(url: str, err) -> OllamaUnavailable:
    return OllamaUnavailable(
        f"No Ollama server answered at {url} ({err}): start one with `ollama serve` and "
        "fetch the judge with `ollama pull llama3`; the offline scores (rouge_l, "
        "reference_perplexity, score_responses) still work without it."
    )


def _open(request, timeout: float):
    """``urlopen``, but a server on this machine is reached directly: an ``http_proxy`` set
    for the internet would otherwise swallow requests to localhost."""
    url = request.full_url if isinstance(request, urllib.request.Request) else request
    host = urllib.parse.urlsplit(url).hostname or ""
    if host in ("localhost", "127.0.0.1", "::1"):
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        return opener.open(request, timeout=timeout)
    return urllib.request.urlopen(request, timeout=timeout)


def ollama_is_running(url: str = OLLAMA_URL, timeout: float = 1.0) -> bool:
    """True if an Ollama server answers a GET at ``url`` within ``timeout`` seconds."""
    try:
        with _open(url, timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def query_ollama(
    prompt: str,
    model: str = "llama3",
    url: str = OLLAMA_CHAT_URL,
    timeout: float = 120.0,
    seed: int = 123,
) -> str:
    """The chat model's whole answer to ``prompt``, deterministic (seed, temperature 0).

    Ollama streams its answer as JSON lines, each with a piece in ``message.content``;
    they are joined. Raises ``OllamaUnavailable`` if no server answers.
    """
    payload = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "options": {"seed": seed, "temperature": 0, "num_ctx": 2048},
    }
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode("utf-8"),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    pieces = []
    try:
        with _open(request, timeout) as response:
            for line in response:
                if not line.strip():
                    continue
                message = json.loads(line)
                pieces.append(message.get("message", {}).get("content", ""))
                if message.get("done"):
                    break
    except urllib.error.HTTPError as err:
        # the server is up but refused: e.g. the model is not pulled; its body says why
        body = err.read().decode(errors="replace")
        raise RuntimeError(f"Ollama at {url} answered {err.code}: {body}") from err
    except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
        raise _unavailable(url, getattr(err, "reason", err)) from err
    return "".join(pieces)


def judge_prompt(entry: dict, key: str = "model_response") -> str:
    """The book's scoring prompt for one entry."""
    return (
        f"Given the input `{format_input(entry)}` "
        f"and correct output `{entry['output']}`, "
        f"score the model response `{entry[key]}`"
        " on a scale from 0 to 100, where 100 is the best score. "
        "Respond with the integer number only."
    )


def parse_score(answer: str) -> int | None:
    """The judge's answer as an integer 0-100, or ``None`` if it is anything else
    (a trailing full stop is forgiven: small models often add one)."""
    match = re.fullmatch(r"\s*(\d{1,3})\s*\.?\s*", answer)
    if match and 0 <= int(match.group(1)) <= 100:
        return int(match.group(1))
    return None


def judge_responses(
    entries,
    model: str = "llama3",
    url: str = OLLAMA_CHAT_URL,
    key: str = "model_response",
    timeout: float = 120.0,
) -> list[int | None]:
    """One score 0-100 per entry from a judge model served by Ollama (the book's 7.8).

    An answer that is not an integer scores ``None``, and one warning at the end says how
    many did, so one odd answer does not lose the others. No server: ``OllamaUnavailable``
    at the first entry.
    """
    scores = [parse_score(query_ollama(judge_prompt(e, key), model, url, timeout)) for e in entries]
    failed = sum(score is None for score in scores)
    if failed:
        warnings.warn(
            f"{failed} of {len(scores)} judge answers were not an integer 0-100; "
            "those entries are scored None.",
            stacklevel=2,
        )
    return scores
