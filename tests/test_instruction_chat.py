"""helpers.widgets.instruction_chat: the prompt shown, the response, callbacks, seeding."""

import html

import pytest
import torch

from helpers.instruct import format_input, format_input_phi3
from helpers.model import GPTModel
from helpers.tokenizer import gpt2_tokenizer
from helpers.widgets.instruction_chat import EMPTY_INSTRUCTION, chat_html, instruction_chat

TINY_CFG = {
    "vocab_size": 50257,
    "context_length": 96,
    "emb_dim": 16,
    "n_heads": 2,
    "n_layers": 1,
    "drop_rate": 0.0,
    "qkv_bias": False,
}


@pytest.fixture(scope="module")
def tok():
    return gpt2_tokenizer()


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(123)
    return GPTModel(TINY_CFG).eval()


def test_chat_html_escapes_and_shows_both():
    page = chat_html("<b>prompt</b>\n### Instruction:", "a < b", note="greedy")
    assert "&lt;b&gt;prompt&lt;/b&gt;" in page and "<b>prompt" not in page
    assert "a &lt; b" in page and "greedy" in page and "<pre" in page
    assert "empty response" in chat_html("p", "")


def test_prompt_shown_matches_format_input(tok, tiny):
    chat = instruction_chat(
        tiny, tok, instruction="Name a colour.", input_text="", max_new_tokens=3
    )
    entry = {"instruction": "Name a colour.", "input": ""}
    assert html.escape(format_input(entry) + "\n\n### Response:\n") in chat.output.value
    chat.input.value = "Sky"
    chat.button.click()  # the text boxes wait for the button
    with_input = format_input({**entry, "input": "Sky"})
    assert html.escape(with_input) in chat.output.value


def test_phi3_style(tok, tiny):
    chat = instruction_chat(tiny, tok, style="phi3", instruction="Hi", max_new_tokens=2)
    prompt = format_input_phi3({"instruction": "Hi", "input": "The car is very fast."})
    assert html.escape(prompt + "\n<|assistant|>:\n") in chat.output.value


def test_callbacks_change_the_output_and_sampling_is_seeded(tok, tiny):
    chat = instruction_chat(tiny, tok, max_new_tokens=4)
    greedy = chat.output.value
    chat.max_new_tokens.value = 6  # a slider redraws by itself
    assert "At most 6 new tokens" in chat.output.value
    chat.temperature.value = 1.5
    chat.top_k.value = 50
    sampled = chat.output.value
    assert sampled != greedy and "seed 123" in sampled
    torch.manual_seed(0)
    chat.update()
    assert chat.output.value == sampled  # same settings, same response
    after_chat = torch.rand(1)
    torch.manual_seed(0)
    assert torch.equal(torch.rand(1), after_chat)  # the chat left the global state alone


def test_empty_instruction_message(tok, tiny):
    chat = instruction_chat(tiny, tok, max_new_tokens=2)
    chat.instruction.value = "   "
    chat.button.click()
    assert html.escape(EMPTY_INSTRUCTION) in chat.output.value
    assert "Prompt" not in chat.output.value
