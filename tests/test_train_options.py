"""TrainingOptions: each switch leaves the results as they were, up to floating-point rounding."""

import pytest
import torch
from torch.nn import functional as F

from helpers.attention import MultiHeadAttention
from helpers.dataset import create_dataloader_v1
from helpers.fused_attention import FusedMultiHeadAttention
from helpers.model import GPTModel
from helpers.training_run import train_model_resumable
from helpers.train_options import (
    PaddedOutputHead,
    TrainingLoss,
    TrainingOptions,
    book_state_dict,
    chunked_cross_entropy,
    compile_available,
    fused_adamw_available,
    make_optimizer,
    prepare_model,
    unpad_output_head,
    use_bf16,
)

TEXT = "Every effort moves you forward, one small step at a time, until the end. " * 8
CONTEXT = 16


class CharTokenizer:
    def __init__(self, text):
        self.chars = sorted(set(text))

    def encode(self, text, allowed_special=None):
        return [self.chars.index(ch) for ch in text]

    def decode(self, ids):
        return "".join(self.chars[i] for i in ids)


TOKENIZER = CharTokenizer(TEXT)


def tiny_config(drop_rate=0.0, vocab_size=None):
    return {
        "vocab_size": vocab_size or len(TOKENIZER.chars),
        "context_length": CONTEXT,
        "emb_dim": 32,
        "n_heads": 2,
        "n_layers": 2,
        "drop_rate": drop_rate,
        "qkv_bias": False,
    }


def build(options=None, drop_rate=0.0, seed=123):
    """The same freshly initialised model each time, prepared for ``options``."""
    torch.manual_seed(seed)
    model = GPTModel(tiny_config(drop_rate))
    options = options or TrainingOptions()
    prepare_model(model, options)
    return model, make_optimizer(model, options, lr=4e-3, weight_decay=0.1)


def loaders():
    split = int(0.8 * len(TEXT))
    train = create_dataloader_v1(TEXT[:split], 4, CONTEXT, CONTEXT, tokenizer=TOKENIZER)
    val = create_dataloader_v1(
        TEXT[split:], 4, CONTEXT, CONTEXT, shuffle=False, drop_last=False, tokenizer=TOKENIZER
    )
    return train, val


def train(options, drop_rate=0.0, num_epochs=2):
    """Losses and final weights of a short run with ``options`` (None: the book's step)."""
    model, optimizer = build(options, drop_rate)
    torch.manual_seed(7)  # the shuffling order
    train_losses, val_losses, _ = train_model_resumable(
        model, *loaders(), optimizer, "cpu", num_epochs=num_epochs, eval_freq=2, eval_iter=2,
        start_context="Every", tokenizer=TOKENIZER, progress=False, options=options,
    )
    return train_losses + val_losses, book_state_dict(model)


def assert_same_run(a, b, tol):
    """Same losses within ``tol`` and final weights within ``10 * tol`` (0: bit for bit).

    The weights get more room: AdamW divides each step by sqrt(v), so the last-bit differences
    of two kernels in a small gradient grow, over the steps, into ~1e-5 differences in the
    weights (seen with MKL_CBWR=COMPATIBLE and ATEN_CPU_CAPABILITY=default)."""
    (losses_a, weights_a), (losses_b, weights_b) = a, b
    assert losses_a == pytest.approx(losses_b, abs=tol, rel=0)
    for name, tensor in weights_a.items():
        torch.testing.assert_close(tensor, weights_b[name], atol=10 * tol, rtol=10 * tol,
                                   msg=lambda detail, name=name: f"{name}: {detail}")


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py


@pytest.fixture(scope="module")
def plain_run():
    """The default options (the fused attention kernel): each test changes one switch."""
    return train(TrainingOptions())


def test_defaults_are_the_books_step_up_to_rounding():
    # with dropout on: on a CPU the fused kernel draws the same random numbers, in the same
    # order, as the explicit maths; without the fused kernel, bit-identical to the book's step
    book = train(None, drop_rate=0.1)
    assert_same_run(train(TrainingOptions(), drop_rate=0.1), book, tol=1e-5)
    assert_same_run(train(TrainingOptions(sdpa=False), drop_rate=0.1), book, tol=0)
    text = TrainingOptions().describe()
    assert "sdpa" in text and "float32 throughout" in text and len(text.splitlines()) == 6


def test_bad_option_values_are_refused():
    with pytest.raises(ValueError, match="bf16"):
        TrainingOptions(bf16="yes")
    with pytest.raises(ValueError, match="loss_chunk_rows"):
        TrainingOptions(loss_chunk_rows=0)
    with pytest.raises(ValueError, match="pad_vocab_multiple"):
        TrainingOptions(pad_vocab_multiple=2.5)


def test_explicit_attention_matches_sdpa_and_is_restored(plain_run):
    assert_same_run(train(TrainingOptions(sdpa=False)), plain_run, tol=1e-5)
    model, optimizer = build()
    loss = TrainingLoss(model, TrainingOptions(), "cpu")
    assert all(type(block.att) is FusedMultiHeadAttention for block in model.trf_blocks)
    loss.close()
    assert all(type(block.att) is MultiHeadAttention for block in model.trf_blocks)
    loss = TrainingLoss(model, TrainingOptions(sdpa=False), "cpu")
    assert all(type(block.att) is MultiHeadAttention for block in model.trf_blocks)
    loss.close()


@pytest.mark.parametrize(
    "option, device, supported, expected",
    [
        (False, "cuda", True, False),
        ("auto", "cuda", True, True),
        ("auto", "cuda", False, False),
        ("auto", "cpu", False, False),
        ("auto", "mps", False, False),
        (True, "cuda", True, True),
    ],
)
def test_bf16_decision(option, device, supported, expected):
    assert use_bf16(option, device, supported) is expected


def test_bf16_is_refused_where_it_cannot_be_honoured():
    with pytest.raises(ValueError, match="only used on CUDA"):
        use_bf16(True, "cpu", False)
    with pytest.raises(ValueError, match="does not support bfloat16"):
        use_bf16(True, "cuda", False)
    model, _ = build()
    with pytest.raises(ValueError, match="bf16=True"):
        TrainingLoss(model, TrainingOptions(bf16=True), "cpu")


def test_bf16_auto_on_cpu_changes_nothing(plain_run):
    # exactly: autocast is not entered at all
    assert_same_run(train(TrainingOptions(bf16="auto")), plain_run, tol=0)


@pytest.mark.skipif(
    not fused_adamw_available("cpu"), reason="AdamW(fused=True) needs torch>=2.4 on CPU"
)
def test_fused_adamw_matches_the_default(plain_run):
    model, optimizer = build(TrainingOptions(fused_adamw=True))
    assert optimizer.defaults["fused"]
    assert_same_run(train(TrainingOptions(fused_adamw=True)), plain_run, tol=1e-5)


def test_options_needing_preparation_are_checked():
    torch.manual_seed(1)
    model = GPTModel(tiny_config())
    optimizer = torch.optim.AdamW(model.parameters())
    args = (model, *loaders(), optimizer, "cpu")
    kwargs = dict(num_epochs=1, eval_freq=2, eval_iter=1, start_context="E", tokenizer=TOKENIZER)
    with pytest.raises(ValueError, match="prepare_model"):
        train_model_resumable(*args, **kwargs, options=TrainingOptions(pad_vocab_multiple=64))
    if fused_adamw_available("cpu"):
        with pytest.raises(ValueError, match="make_optimizer"):
            train_model_resumable(*args, **kwargs, options=TrainingOptions(fused_adamw=True))


def test_padded_head_gives_the_same_logits_and_loss():
    torch.manual_seed(3)
    model = GPTModel(tiny_config(vocab_size=50257)).eval()
    ids = torch.randint(0, 50257, (2, CONTEXT))
    targets = torch.randint(0, 50257, (2, CONTEXT))
    before = model(ids)
    head = prepare_model(model, TrainingOptions(pad_vocab_multiple=64)).out_head
    assert isinstance(head, PaddedOutputHead) and head.weight.shape == (50304, 32)
    after = model(ids)
    assert after.shape == before.shape  # the padding never reaches the caller
    torch.testing.assert_close(after, before, atol=1e-6, rtol=1e-5)
    loss = F.cross_entropy(after.flatten(0, 1), targets.flatten())
    unpadded_loss = F.cross_entropy(before.flatten(0, 1), targets.flatten())
    assert loss.item() == pytest.approx(unpadded_loss.item(), rel=1e-5)  # ~10 float32 ulps
    loss.backward()
    assert torch.count_nonzero(head.weight.grad[50257:]) == 0  # the extra rows learn nothing
    # the book's shapes, for a plain GPTModel or the book's own code
    fresh = GPTModel(tiny_config(vocab_size=50257))
    fresh.load_state_dict(book_state_dict(model))
    torch.testing.assert_close(fresh.eval()(ids), before, atol=1e-6, rtol=1e-5)
    assert type(unpad_output_head(model).out_head) is torch.nn.Linear
    assert model.out_head.weight.shape == (50257, 32)


def test_training_with_a_padded_head_matches(plain_run):
    assert_same_run(train(TrainingOptions(pad_vocab_multiple=64)), plain_run, tol=1e-5)


@pytest.mark.parametrize("chunk_rows", [1, 7, 64, 1000])
def test_chunked_cross_entropy_equals_the_full_one(chunk_rows):
    torch.manual_seed(5)
    hidden = torch.randn(37, 16, requires_grad=True)
    weight = torch.randn(70, 16, requires_grad=True)  # 60 real rows, 10 of padding
    targets = torch.randint(0, 60, (37,))
    targets[[3, 20]] = -100  # ignored, as F.cross_entropy ignores them
    expected = F.cross_entropy(hidden @ weight[:60].T, targets)
    grads = torch.autograd.grad(expected, (hidden, weight))
    loss = chunked_cross_entropy(hidden, weight, targets, chunk_rows, vocab_size=60)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)  # ~10 float32 ulps
    for got, want in zip(torch.autograd.grad(2 * loss, (hidden, weight)), grads, strict=True):
        torch.testing.assert_close(got, 2 * want, atol=1e-6, rtol=1e-5)
    with torch.no_grad():  # evaluation: no gradients computed or kept
        loss = chunked_cross_entropy(hidden, weight, targets, chunk_rows, 60)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)  # ~10 float32 ulps


def test_training_with_the_chunked_loss_matches(plain_run):
    assert_same_run(train(TrainingOptions(loss_chunk_rows=5)), plain_run, tol=1e-5)
    both = TrainingOptions(loss_chunk_rows=24, pad_vocab_multiple=64)
    assert_same_run(train(both), plain_run, tol=1e-5)


def test_compiled_training_matches_eager(plain_run):
    if not compile_available("cpu"):
        pytest.skip("torch.compile on CPU needs a C compiler (cc or gcc), and none is installed")
    try:
        compiled = train(TrainingOptions(compile=True), num_epochs=1)
    except Exception as err:  # inductor can fail for reasons of the machine, not of our code
        if "compile" in type(err).__module__ or "inductor" in str(err).lower():
            pytest.skip(f"torch.compile cannot run here: {type(err).__name__}: {err}"[:300])
        raise
    eager = train(None, num_epochs=1)
    assert_same_run(compiled, eager, tol=1e-5)
