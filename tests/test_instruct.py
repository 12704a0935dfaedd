"""helpers.instruct: data, prompts, batches, responses, offline scores, the Ollama judge."""

import http.server
import json
import math
import socket
import threading

import pytest
import torch
from torch import nn

from helpers.instruct import (
    IGNORE_INDEX,
    InstructionDataset,
    OllamaUnavailable,
    collate_items,
    custom_collate_fn,
    format_example,
    format_input,
    format_input_phi3,
    generate_response,
    generate_responses,
    instruction_dataloaders,
    judge_prompt,
    judge_responses,
    load_instruction_data,
    load_instruction_splits,
    ollama_is_running,
    query_ollama,
    reference_perplexity,
    response_prefix,
    rouge_l,
    save_responses,
    score_responses,
)
from helpers.model import GPTModel
from helpers.tokenizer import gpt2_tokenizer

PREAMBLE = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request."
)
TINY_CFG = {
    "vocab_size": 50257,
    "context_length": 64,
    "emb_dim": 16,
    "n_heads": 2,
    "n_layers": 1,
    "drop_rate": 0.0,
    "qkv_bias": False,
}
WITH_INPUT = {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"}
NO_INPUT = {"instruction": "Name a colour.", "input": "", "output": "Blue."}


@pytest.fixture(scope="module")
def tok():
    return gpt2_tokenizer()


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(123)
    return GPTModel(TINY_CFG).eval()


def fake_data(n):
    return [{"instruction": f"Say {i}.", "input": "", "output": str(i)} for i in range(n)]


# --- data ------------------------------------------------------------------------------------


def test_book_data_and_split_sizes():
    data = load_instruction_data()
    assert len(data) == 1100
    train, test, val = load_instruction_splits(data)
    assert (len(train), len(test), len(val)) == (935, 110, 55)
    assert train[0] == data[0] and test[0] == data[935] and val[-1] == data[-1]


def test_malformed_entries_are_named_by_index(tmp_path):
    data = fake_data(5)
    data[1] = ["not", "a", "dict"]
    del data[3]["output"]
    data[4]["input"] = None
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError) as err:
        load_instruction_data(path)
    message = str(err.value)
    assert "3 of 5" in message
    assert "entry 1: is a list, not a dict" in message
    assert "entry 3: has no 'output'" in message
    assert "entry 4: 'input' is a NoneType, not a string" in message
    assert "entry 0" not in message and "entry 2" not in message


def test_extra_keys_are_allowed():
    data = [{**WITH_INPUT, "model_response": "5"}]
    assert load_instruction_splits(data * 20)[0][0]["model_response"] == "5"


# --- prompts ---------------------------------------------------------------------------------


def test_format_input_with_and_without_input():
    assert format_input(WITH_INPUT) == (
        PREAMBLE + "\n\n### Instruction:\nAdd the numbers.\n\n### Input:\n2 and 3"
    )
    assert format_input(NO_INPUT) == PREAMBLE + "\n\n### Instruction:\nName a colour."
    assert format_example(NO_INPUT) == format_input(NO_INPUT) + "\n\n### Response:\nBlue."


def test_phi3_style():
    assert format_input_phi3(WITH_INPUT) == "<|user|>\nAdd the numbers.\n2 and 3"
    assert format_input_phi3(NO_INPUT) == "<|user|>\nName a colour."
    assert format_example(NO_INPUT, "phi3") == "<|user|>\nName a colour.\n<|assistant|>:\nBlue."
    assert response_prefix("phi3") == "\n<|assistant|>:\n"
    with pytest.raises(ValueError, match="style"):
        response_prefix("chatml")


# --- batches ---------------------------------------------------------------------------------

BOOK_BATCH = [[0, 1, 2, 3, 4], [5, 6], [7, 8, 9]]
EOS = 50256


def test_collate_matches_the_book():
    inputs, targets = custom_collate_fn(BOOK_BATCH)
    assert inputs.tolist() == [[0, 1, 2, 3, 4], [5, 6, EOS, EOS, EOS], [7, 8, 9, EOS, EOS]]
    assert targets.tolist() == [
        [1, 2, 3, 4, EOS],
        [6, EOS, -100, -100, -100],
        [8, 9, EOS, -100, -100],
    ]


def test_collate_truncates_to_allowed_max_length():
    inputs, targets = custom_collate_fn(BOOK_BATCH, allowed_max_length=2)
    assert inputs.tolist() == [[0, 1], [5, 6], [7, 8]]
    assert targets.tolist() == [[1, 2], [6, EOS], [8, 9]]


def test_collate_masks_the_prompt():
    # prompt lengths 3, 1, 2: only the targets after the prompt (and the first end) count
    batch = [(ids, n) for ids, n in zip(BOOK_BATCH, (3, 1, 2))]
    inputs, targets = custom_collate_fn(batch, mask_prompt=True)
    assert inputs.tolist() == custom_collate_fn(BOOK_BATCH)[0].tolist()
    assert targets.tolist() == [
        [-100, -100, 3, 4, EOS],
        [6, EOS, -100, -100, -100],
        [-100, 9, EOS, -100, -100],
    ]
    with pytest.raises(ValueError, match="prompt_length"):
        custom_collate_fn(BOOK_BATCH, mask_prompt=True)


def test_collate_items_with_and_without_prompt_lengths():
    assert collate_items([(0, 1), [2]], mask_prompt=False) == ([[0, 1], [2]], [None, None])
    with_lengths = [([0, 1, 2], 2), ((3, 4), 1)]  # ids may be any sequence
    assert collate_items(with_lengths, mask_prompt=True) == ([[0, 1, 2], [3, 4]], [2, 1])
    with pytest.raises(ValueError, match="InstructionDataset"):
        collate_items([([0, 1], 1), [2, 3]], mask_prompt=True)  # one item without its length


def test_collate_learns_an_end_token_inside_a_text():
    # the padding is found by position: an end token the text itself holds stays a target,
    # and so does the one that ends it (the book's, found by value, would ignore the latter)
    inputs, targets = custom_collate_fn([[1, EOS, 2], [3]])
    assert inputs.tolist() == [[1, EOS, 2], [3, EOS, EOS]]
    assert targets.tolist() == [[EOS, 2, EOS], [EOS, -100, -100]]


def test_dataset_prompt_lengths_and_masking(tok):
    dataset = InstructionDataset([WITH_INPUT, NO_INPUT], tok, mask_prompt=True)
    ids, n = dataset[1]
    assert ids == tok.encode(format_example(NO_INPUT))
    assert tok.decode(ids[n:]) == "Blue."  # the header belongs to the prompt
    _, targets = custom_collate_fn([dataset[0], dataset[1]], mask_prompt=True)
    learnt = [t for t in targets[1].tolist() if t != IGNORE_INDEX]
    assert learnt == tok.encode("Blue.") + [EOS]
    assert InstructionDataset([NO_INPUT], tok)[0] == ids  # unmasked: just the ids


def test_dataloaders(tok):
    train, val, test = instruction_dataloaders(
        tok, batch_size=4, allowed_max_length=12, data=fake_data(40)
    )
    assert (len(train.dataset), len(test.dataset), len(val.dataset)) == (34, 4, 2)
    assert len(train) == 34 // 4  # drop_last
    inputs, targets = next(iter(train))
    assert inputs.shape == targets.shape and inputs.shape[0] == 4 and inputs.shape[1] <= 12
    again = next(iter(instruction_dataloaders(tok, 4, 12, data=fake_data(40))[0]))[0]
    assert torch.equal(inputs, again)  # seeded shuffle


# --- generation ------------------------------------------------------------------------------


class Rigged(nn.Module):
    """The tiny model, but at position ``stop_at`` and after, <|endoftext|> wins."""

    def __init__(self, inner, stop_at):
        super().__init__()
        self.inner, self.stop_at, self.pos_emb = inner, stop_at, inner.pos_emb

    def forward(self, idx):
        logits = self.inner(idx).clone()
        logits[:, self.stop_at - 1:, EOS] = 1e4  # the logits at j predict token j + 1
        return logits


def test_generate_response_strips_the_prompt(tok, tiny):
    entry = {"instruction": "Hi", "input": "", "output": "x"}
    n_prompt = len(tok.encode(format_input(entry)))
    rigged = Rigged(tiny, stop_at=n_prompt + 3)  # three tokens, then the end
    out = torch.tensor([tok.encode(format_input(entry))])
    for _ in range(3):
        out = torch.cat([out, tiny(out)[:, -1:].argmax(-1)], dim=1)
    expected = tok.decode(out[0, n_prompt:].tolist()).strip()
    response = generate_response(rigged, tok, entry, max_new_tokens=20)
    assert response == expected
    assert "Below is" not in response and "Hi" not in response.split()
    (answered,) = generate_responses(rigged, tok, [entry], max_new_tokens=20)
    assert answered == {**entry, "model_response": response}


def test_save_responses_is_json(tmp_path):
    path = save_responses([{**NO_INPUT, "model_response": "Red."}], tmp_path / "out.json")
    assert json.loads(path.read_text())[0]["model_response"] == "Red."
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temporary file left


# --- offline scores --------------------------------------------------------------------------


def test_rouge_l_known_values():
    assert rouge_l("The cat sat.", "the cat sat") == 1.0
    assert rouge_l("dogs bark", "the cat sat") == 0.0
    # LCS 3: precision 3/3, recall 3/6 -> F1 = 2 * 1 * 0.5 / 1.5 = 2/3
    assert rouge_l("the cat sat", "the cat sat on the mat") == pytest.approx(2 / 3)
    assert rouge_l("", "") == 1.0 and rouge_l("", "a") == 0.0


def test_score_responses():
    entries = [
        {**NO_INPUT, "model_response": "blue"},
        {**WITH_INPUT, "model_response": "7"},
    ]
    scores = score_responses(entries)
    assert scores["n"] == 2
    assert scores["rouge_l"] == pytest.approx(0.5)
    assert scores["exact_match"] == pytest.approx(0.5)


def test_reference_perplexity_on_a_tiny_model(tok, tiny):
    value = reference_perplexity(tiny, tok, [WITH_INPUT, NO_INPUT], device="cpu")
    assert math.isfinite(value) and value > 1
    assert tiny.training is False


# --- the Ollama judge ------------------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def fake_ollama():
    """A stand-in Ollama server: streams the queued answer as JSON lines, two pieces each."""
    answers, requests = [], []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"Ollama is running")

        def do_POST(self):
            requests.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            answer = answers.pop(0)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.end_headers()
            half = len(answer) // 2
            for piece, done in ((answer[:half], False), (answer[half:], False), ("", True)):
                line = {"message": {"role": "assistant", "content": piece}, "done": done}
                self.wfile.write(json.dumps(line).encode() + b"\n")

        def log_message(self, *args):  # keep the test output clean
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    yield base, answers, requests
    server.shutdown()
    server.server_close()


def test_query_ollama_joins_the_stream(fake_ollama):
    base, answers, requests = fake_ollama
    answers.append("Hello there")
    assert ollama_is_running(base, timeout=10)  # a busy machine may answer slowly
    assert query_ollama("Hi?", model="phi3", url=base + "/api/chat") == "Hello there"
    assert requests[0] == {
        "model": "phi3",
        "messages": [{"role": "user", "content": "Hi?"}],
        "options": {"seed": 123, "temperature": 0, "num_ctx": 2048},
    }


def test_judge_scores_and_non_numeric_answers(fake_ollama):
    base, answers, requests = fake_ollama
    answers += ["85", "I would say it is good"]
    entries = [{**NO_INPUT, "model_response": "Blue"}, {**WITH_INPUT, "model_response": "6"}]
    with pytest.warns(UserWarning, match="1 of 2"):
        scores = judge_responses(entries, url=base + "/api/chat")
    assert scores == [85, None]
    assert requests[0]["messages"][0]["content"] == judge_prompt(entries[0])
    assert "score the model response `Blue`" in judge_prompt(entries[0])


def test_judge_without_server_says_how_to_start_one():
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    assert not ollama_is_running(url, timeout=0.5)
    with pytest.raises(OllamaUnavailable, match="ollama serve.*ollama pull llama3.*offline"):
        judge_responses([{**NO_INPUT, "model_response": "Blue"}], url=url + "/api/chat")
