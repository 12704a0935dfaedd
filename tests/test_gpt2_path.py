"""The GPT-2 branches of notebooks 06, 08 and 09: what a student with the weights runs.

The committed notebooks take the offline fallback (no GPT-2 on the machine that runs them), so
nothing there exercises the "GPT-2 loaded" branches. Here a tiny random GPT-2 built with
``transformers`` is saved in Hugging Face's layout into a temporary data mirror
(``$LLM_DATA_MIRROR/gpt2``, as a classroom's USB stick would hold it), and each branch's helper
calls run on it, in the notebooks' order, at tiny sizes.

One seam: ``load_gpt2("gpt2-small (124M)")`` builds the book's 124M config and would rightly
refuse a tiny file, so ``helpers.weights.gpt2_config`` is patched to the tiny model's config
(the loading, mapping and mirror lookup are otherwise the real ones).
"""

import math
import os
from pathlib import Path

import pytest
import torch
from rigged_models import perturbed_hf_gpt2
from torch.utils.data import DataLoader, Subset

from helpers import weights
from helpers.classify import (
    add_classification_head,
    calc_accuracy_loader,
    calc_loss_batch_classifier,
    classify_review,
    confusion_matrix,
    freeze_for_classification,
    spam_dataloaders,
)
from helpers.dataset import create_dataloader_v1
from helpers.generate import generate
from helpers.instruct import (
    format_input,
    generate_response,
    generate_responses,
    instruction_dataloaders,
    load_instruction_data,
    load_instruction_splits,
    score_responses,
)
from helpers.lora import (
    count_trainable_parameters,
    mark_only_lora_trainable,
    replace_linear_with_lora,
)
from helpers.model import GPTModel, text_to_token_ids, token_ids_to_text
from helpers.runtime import PROFILES
from helpers.tokenizer import gpt2_tokenizer
from helpers.train import calc_loss_batch, calc_loss_loader
from helpers.weights import load_base_model, load_gpt2

pytest.importorskip("transformers")

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# GPT-2's vocabulary (the notebooks' tokenizer) and context (06 generates with context_size=1024
# written out; 08 and 09 read it from pos_emb), everything else tiny.
N_EMBD, N_LAYER, N_HEAD, N_POSITIONS, VOCAB = 32, 2, 2, 1024, 50257
TINY = {
    "vocab_size": VOCAB, "context_length": N_POSITIONS, "emb_dim": N_EMBD,
    "n_heads": N_HEAD, "n_layers": N_LAYER, "drop_rate": 0.0, "qkv_bias": True,
}
IDS = torch.tensor([[6109, 3626, 6100, 345, 11, 290, 262, 3797]])  # "Every effort moves you", ...


@pytest.fixture(scope="module")
def hf_model():
    return perturbed_hf_gpt2(N_EMBD, N_LAYER, N_HEAD, N_POSITIONS, VOCAB)


@pytest.fixture(scope="module")
def mirror(hf_model, tmp_path_factory):
    """A data mirror: the real one's files (linked) plus the tiny GPT-2 under each size's folder
    the notebooks ask for (``gpt2``: 06, 08, 09 in the cpu profile; ``gpt2-medium``: 09 in gpu)."""
    folder = tmp_path_factory.mktemp("mirror")
    real = os.environ.get("LLM_DATA_MIRROR", "").strip()
    if real:
        for entry in Path(real).iterdir():
            (folder / entry.name).symlink_to(entry)
    for name in ("gpt2", "gpt2-medium"):
        hf_model.save_pretrained(folder / name, safe_serialization=True)
    return folder


@pytest.fixture
def with_gpt2(mirror, monkeypatch):
    """As on a student's machine with the weights: the mirror holds them, no network needed."""
    monkeypatch.setenv("LLM_DATA_MIRROR", str(mirror))
    monkeypatch.setenv("LLM_OFFLINE", "1")  # the hub must never be asked
    monkeypatch.setattr(weights, "gpt2_config", lambda size: dict(TINY))
    return mirror


@pytest.fixture(scope="module")
def tokenizer():
    return gpt2_tokenizer()


def logits_of(model, ids=IDS):
    with torch.no_grad():
        out = model(ids)
    return getattr(out, "logits", out)


def loaded_base_model(size, capsys):
    """``load_base_model`` as notebooks 08 and 09 call it, with the check that it took the GPT-2
    branch (not the fallback model of notebook 06)."""
    model, name = load_base_model(size, device="cpu", drop_rate=0.0)
    assert name.startswith("gpt2"), name  # what the notebooks test to choose their branch
    assert "Using OpenAI's" in capsys.readouterr().out
    return model, name


# --- the loader: our GPTModel computes what transformers computes -----------------------------


def test_a_hugging_face_folder_loads_with_the_same_logits(hf_model, mirror):
    model = load_gpt2(mirror / "gpt2")
    assert isinstance(model, GPTModel) and not model.training
    assert model.out_head.weight is model.tok_emb.weight  # tied, as GPT-2 is
    assert (logits_of(model) - logits_of(hf_model)).abs().max().item() <= 1e-4


def test_the_mirror_gives_the_size_name_its_weights(hf_model, with_gpt2):
    """What 06's ``load_gpt2("gpt2-small (124M)")`` does when $LLM_DATA_MIRROR/gpt2 is there."""
    model = load_gpt2("gpt2-small (124M)", device="cpu")
    assert (logits_of(model) - logits_of(hf_model)).abs().max().item() <= 1e-4


def test_without_the_mirror_the_size_name_is_unavailable(mirror, monkeypatch):
    """The other side of the switch: no GPT-2 folder, offline -> WeightsUnavailable, which 06
    catches to take its fallback (and load_base_model turns into notebook 06's model)."""
    empty = mirror.parent / "empty-mirror"
    empty.mkdir(exist_ok=True)
    monkeypatch.setenv("LLM_DATA_MIRROR", str(empty))
    monkeypatch.setenv("LLM_OFFLINE", "1")
    monkeypatch.setenv("LLM_DATA_DIR", str(empty))  # no copy in the data folder either
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(empty))  # nor in the hub's cache
    with pytest.raises(weights.WeightsUnavailable, match=r"\$LLM_DATA_MIRROR/gpt2\.$"):
        load_gpt2("gpt2-small (124M)")


# --- notebook 06: load GPT-2, generate, compare losses, the two viewers -----------------------


def test_notebook_06_branch(hf_model, with_gpt2, tokenizer):
    gpt2 = load_gpt2("gpt2-small (124M)", device="cpu")

    torch.manual_seed(123)
    prompt = text_to_token_ids("Every effort moves you", tokenizer)
    out = generate(gpt2, prompt, max_new_tokens=25, context_size=1024, top_k=50, temperature=1.5)
    assert out.shape == (1, prompt.shape[1] + 25)
    assert token_ids_to_text(out, tokenizer).startswith("Every effort moves you")

    # the loss table's GPT-2 row: our loss on The Verdict equals cross-entropy of HF's logits
    from helpers.data import read_text

    text = read_text("the-verdict.txt")[:4000]
    loader = create_dataloader_v1(text, batch_size=2, max_length=64, stride=64, shuffle=False)
    inputs, targets = next(iter(loader))
    theirs = torch.nn.functional.cross_entropy(logits_of(hf_model, inputs).flatten(0, 1),
                                               targets.flatten())
    with torch.no_grad():
        assert calc_loss_batch(inputs, targets, gpt2, "cpu").item() == pytest.approx(
            theirs.item(), abs=1e-4)
        assert math.isfinite(calc_loss_loader(loader, gpt2, "cpu", num_batches=2))

    from helpers.widgets import attention_viewer, embedding_explorer

    assert attention_viewer(gpt2, tokenizer, text="The cat sat on the mat because it was tired")
    assert embedding_explorer(gpt2.tok_emb, tokenizer)


# --- notebook 08: a classification head on GPT-2, last block trained, then LoRA ---------------


@pytest.fixture(scope="module")
def spam_loaders(tokenizer):
    torch.manual_seed(123)
    return spam_dataloaders(tokenizer, batch_size=8, context_length=N_POSITIONS)


def few(loader, n, batch_size=8):
    """The first ``n`` examples of a loader's data set, in a loader of the same kind."""
    return DataLoader(Subset(loader.dataset, range(n)), batch_size=batch_size, shuffle=False)


def steps_on_one_batch(model, inputs, labels, lr, n=5):
    """Classifier losses over ``n`` AdamW steps on one batch (a model that can learn fits it)."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    losses = []
    for _ in range(n):
        optimizer.zero_grad()
        loss = calc_loss_batch_classifier(inputs, labels, model, "cpu")
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_notebook_08_branch_last_block(with_gpt2, capsys, tokenizer, spam_loaders):
    model, _ = loaded_base_model("gpt2-small (124M)", capsys)
    context_length = model.pos_emb.weight.shape[0]
    assert context_length == N_POSITIONS
    train_loader, val_loader, test_loader = spam_loaders
    assert train_loader.dataset.max_length <= context_length  # every message fits GPT-2's context

    torch.manual_seed(123)
    embedding = model.tok_emb.weight.detach().clone()
    add_classification_head(model, num_classes=2)
    assert model.out_head.weight.shape == (2, N_EMBD)
    assert model.out_head.weight is not model.tok_emb.weight  # the tie ends with the new head
    assert torch.equal(model.tok_emb.weight, embedding)  # ... and the embedding is untouched

    what_to_train = "last_block"  # the notebook's choice when using_gpt2
    n_trainable = freeze_for_classification(model, train=what_to_train)
    expected = sum(p.numel() for part in (model.trf_blocks[-1], model.final_norm, model.out_head)
                   for p in part.parameters())
    assert n_trainable == expected
    assert not model.tok_emb.weight.requires_grad
    assert not model.trf_blocks[0].att.W_query.weight.requires_grad

    inputs, labels = next(iter(train_loader))
    losses = steps_on_one_batch(model, inputs, labels, lr=1e-3)
    assert all(math.isfinite(x) for x in losses) and losses[-1] < losses[0]
    assert torch.equal(model.tok_emb.weight, embedding)  # frozen stayed frozen

    from helpers.training_run import train_classifier

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=5e-5, weight_decay=0.1)
    train_losses, val_losses, train_accs, val_accs, seen = train_classifier(
        model, few(train_loader, 16), few(val_loader, 8), optimizer, "cpu",
        num_epochs=1, eval_freq=1, eval_iter=1, progress=False,
    )
    assert len(train_losses) == len(val_losses) == 2 and seen == 16
    assert all(0.0 <= a <= 1.0 for a in train_accs + val_accs)

    accuracy = calc_accuracy_loader(few(test_loader, 16), model, "cpu")
    assert 0.0 <= accuracy <= 1.0 and (accuracy * 16) == pytest.approx(round(accuracy * 16))
    cm = confusion_matrix(model, few(test_loader, 16), "cpu")
    assert cm.sum() == 16 and tuple(cm.shape) == (2, 2)
    max_length = train_loader.dataset.max_length
    assert classify_review("You won $1000 cash!", model, tokenizer, "cpu",
                           max_length=max_length) in ("spam", "not spam")

    from helpers.widgets import probe_html, spam_probe

    text = "You won $1000 cash!"
    assert spam_probe(model, tokenizer, device="cpu", text=text, max_length=max_length)
    assert "won" in probe_html(text, model, tokenizer, "cpu", max_length=max_length)


def test_notebook_08_branch_lora(with_gpt2, capsys, spam_loaders):
    lora_model, _ = loaded_base_model("gpt2-small (124M)", capsys)
    torch.manual_seed(123)
    add_classification_head(lora_model, num_classes=2)
    linears = {name: (m.in_features, m.out_features) for name, m in lora_model.named_modules()
               if isinstance(m, torch.nn.Linear)}
    replace_linear_with_lora(lora_model, rank=16, alpha=16)
    mark_only_lora_trainable(lora_model)
    # 6 linear layers per block plus the head, each with A (in x r) and B (r x out)
    assert len(linears) == 6 * N_LAYER + 1
    assert count_trainable_parameters(lora_model) == sum(16 * (i + o) for i, o in linears.values())

    frozen = {n: p.detach().clone()
              for n, p in lora_model.named_parameters() if not p.requires_grad}
    inputs, labels = next(iter(spam_loaders[0]))
    losses = steps_on_one_batch(lora_model, inputs, labels, lr=1e-2)
    assert all(math.isfinite(x) for x in losses) and losses[-1] < losses[0]
    assert all(torch.equal(p, frozen[n]) for n, p in lora_model.named_parameters() if n in frozen)


# --- notebook 09: instruction fine-tuning of GPT-2, its head tied to the embedding -------------


@pytest.mark.parametrize("size", sorted({p.instruct_gpt2_size for p in PROFILES.values()}))
def test_notebook_09_asks_for_a_size_the_mirror_can_hold(size, with_gpt2, capsys):
    _, name = loaded_base_model(size, capsys)
    assert name == size


def test_notebook_09_branch(with_gpt2, capsys, tokenizer):
    model, _ = loaded_base_model("gpt2-small (124M)", capsys)
    context_length = model.pos_emb.weight.shape[0]
    assert model.out_head.weight is model.tok_emb.weight  # one shared matrix (the book copies it)

    data = load_instruction_data()[:40]  # the book's split of 40 entries: 34 / 4 / 2
    _, test_data, val_data = load_instruction_splits(data)
    torch.manual_seed(123)
    train_loader, val_loader, _ = instruction_dataloaders(
        tokenizer, batch_size=8, allowed_max_length=context_length, device="cpu", data=data)
    inputs, targets = next(iter(train_loader))
    assert inputs.shape == targets.shape and inputs.shape[1] <= context_length

    reply = generate_response(model, tokenizer, val_data[0], max_new_tokens=10,
                              context_size=context_length, device="cpu")
    assert isinstance(reply, str)

    from helpers.training_run import train_model_resumable

    embedding = model.tok_emb.weight.detach().clone()
    torch.manual_seed(123)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.1)
    train_losses, val_losses, tokens_seen = train_model_resumable(
        model, train_loader, val_loader, optimizer, "cpu", num_epochs=1, eval_freq=2,
        eval_iter=1, start_context=format_input(val_data[0]), tokenizer=tokenizer, progress=False,
    )
    assert train_losses and len(train_losses) == len(val_losses) == len(tokens_seen)
    assert all(math.isfinite(x) for x in train_losses + val_losses)
    # still tied after training, and the one matrix moved: fine-tuning updates head and embedding
    assert model.out_head.weight is model.tok_emb.weight
    assert not torch.equal(model.tok_emb.weight, embedding)

    # a few steps on one batch with a larger step: the loss must fall
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(5):
        optimizer.zero_grad()
        loss = calc_loss_batch(inputs, targets, model, "cpu")
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]

    results = generate_responses(model, tokenizer, test_data[:2], max_new_tokens=5,
                                 context_size=context_length, device="cpu")
    assert len(results) == 2 and all(isinstance(r["model_response"], str) for r in results)
    scores = score_responses(results)
    assert all(0.0 <= v <= 1.0 for k, v in scores.items() if "rouge" in k.lower())
