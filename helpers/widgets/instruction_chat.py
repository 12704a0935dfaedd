"""Instruction chat: ask a fine-tuned model something and see the exact prompt it gets (09).

- ``chat_html(prompt, response)``    the formatted prompt (monospace) above the response
- ``instruction_chat(model, tokenizer)``  the interactive version: instruction, optional
                                          input, temperature, top-k, length, a Respond button

The prompt comes from ``helpers.instruct.format_input`` and the answer from
``generate_response``, the same code the notebook evaluates the model with.
"""

from __future__ import annotations

import html

import torch
from torch import nn

from ..instruct import generate_response, prompt_text, response_prefix
from ..runtime import model_device
from .attention_viewer import message_html
from .panel import panel, quote
from .token_viewer import MUTED_COLOR, TEXT_COLOR

SEED = 123  # sampling is seeded, so the same settings always give the same answer
EMPTY_INSTRUCTION = "Type an instruction above: the model answers instructions, and has none."

_PROMPT_STYLE = (
    "font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:13px; "
    f"white-space:pre-wrap; word-break:break-word; color:{MUTED_COLOR}; background:#f8fafc; "
    "border:1px solid #e2e8f0; border-radius:4px; padding:6px 8px; margin:0 0 6px 0"
)
_RESPONSE_STYLE = (
    f"font-family:sans-serif; font-size:14px; line-height:1.5; color:{TEXT_COLOR}; "
    "white-space:pre-wrap; word-break:break-word; background:#dbeafe; border-radius:4px; "
    "padding:6px 8px"
)
_LABEL_STYLE = f"font-family:sans-serif; font-size:12px; color:{MUTED_COLOR}; margin:4px 0 2px"


def chat_html(prompt: str, response: str, note: str = "") -> str:
    """The prompt as the model sees it (escaped, monospace), then its response."""
    response_text = html.escape(response) if response else "<i>(an empty response)</i>"
    note_div = f'<div style="{_LABEL_STYLE}">{html.escape(note)}</div>' if note else ""
    return (
        f'<div><div style="{_LABEL_STYLE}">Prompt</div>'
        f'<pre style="{_PROMPT_STYLE}">{html.escape(prompt)}</pre>'
        f'<div style="{_LABEL_STYLE}">Response</div>'
        f'<div style="{_RESPONSE_STYLE}">{response_text}</div>{note_div}</div>'
    )


def chat_summary(instruction: str, response: str) -> str:
    """``Instruction chat: 'Rewrite the sentence using…' → 'The car is as fast as…'``."""
    answer = quote(response, 36) if response.strip() else "an empty response"
    return f"Instruction chat: {quote(instruction, 30)} \u2192 {answer}"


def _seeded_response(model: nn.Module, tokenizer, entry: dict, **kwargs) -> str:
    """``generate_response`` with its own seeded copy of the random state, so the chat
    repeats itself for the same settings and leaves the notebook's random numbers alone."""
    device = model_device(model)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(SEED)
        return generate_response(model, tokenizer, entry, device=device, **kwargs)


def instruction_chat(
    model: nn.Module,
    tokenizer=None,
    device=None,
    style: str = "alpaca",
    instruction: str = "Rewrite the sentence using a simile.",
    input_text: str = "The car is very fast.",
    max_new_tokens: int = 35,
    context_size: int | None = None,
):
    """An instruction, an optional input, sampling sliders and a Respond button.

    Shows the prompt built by ``format_input`` (or the Phi-3 style) and the model's response.
    Temperature 0 is greedy; top-k 0 is off; sampling is seeded (seed 123), so the same
    settings give the same response. The returned ``VBox`` has ``.instruction``, ``.input``,
    ``.temperature``, ``.top_k``, ``.max_new_tokens``, ``.button`` (the controls),
    ``.output`` (HTML) and ``.update()``; its ``repr`` is one line: the instruction and the
    start of the response. ``device``: moves the model there if given.
    """
    import ipywidgets as widgets

    if tokenizer is None:
        from ..tokenizer import gpt2_tokenizer

        tokenizer = gpt2_tokenizer()
    if device is not None:
        model.to(device)
    style_ = {"description_width": "95px"}
    slider = {"continuous_update": False, "style": style_, "layout": widgets.Layout(width="330px")}
    box_layout = {"layout": widgets.Layout(width="100%", height="4em")}
    instruction_box = widgets.Textarea(
        value=instruction, placeholder="Instruction, e.g. 'Name three primary colours.'",
        **box_layout,
    )
    input_box = widgets.Textarea(
        value=input_text, placeholder="Optional input the instruction refers to", **box_layout
    )
    temperature_slider = widgets.FloatSlider(
        value=0.0, min=0.0, max=2.0, step=0.05, description="temperature",
        readout_format=".2f", **slider,
    )
    top_k_slider = widgets.IntSlider(
        value=0, min=0, max=100, description="top-k (0 = off)", **slider
    )
    length_slider = widgets.IntSlider(
        value=max_new_tokens, min=1, max=max(256, max_new_tokens), description="new tokens",
        **slider,
    )
    button = widgets.Button(description="Respond", button_style="primary", icon="comment")
    output = widgets.HTML()
    state = {"summary": ""}

    def update(change=None):
        entry = {"instruction": instruction_box.value.strip(), "input": input_box.value.strip()}
        if not entry["instruction"]:
            output.value = message_html(EMPTY_INSTRUCTION)
            state["summary"] = "Instruction chat: no instruction typed"
            return
        temperature = float(temperature_slider.value)
        response = _seeded_response(
            model,
            tokenizer,
            entry,
            max_new_tokens=length_slider.value,
            context_size=context_size,
            style=style,
            temperature=temperature,
            top_k=top_k_slider.value or None,
        )
        how = "greedy" if temperature == 0 else f"sampled, seed {SEED}"
        note = f"At most {length_slider.value} new tokens, {how}."
        output.value = chat_html(prompt_text(entry, style) + response_prefix(style), response, note)
        state["summary"] = chat_summary(entry["instruction"], response)

    # typing would run the model on every key, so the text boxes wait for the button
    button.on_click(update)
    for control in (temperature_slider, top_k_slider, length_slider):
        control.observe(update, names="value")
    update()

    box = panel(
        [
            instruction_box,
            input_box,
            widgets.HBox([temperature_slider, top_k_slider]),
            widgets.HBox([length_slider, button]),
            output,
        ],
        summary=lambda: state["summary"],
        layout=widgets.Layout(width="100%"),
    )
    box.instruction, box.input, box.temperature, box.top_k = (
        instruction_box,
        input_box,
        temperature_slider,
        top_k_slider,
    )
    box.max_new_tokens, box.button, box.output, box.update = length_slider, button, output, update
    return box
