"""helpers.weights: GPT-2 weights from Hugging Face's layout into GPTModel, exactly.

The proof of the mapping: a small random GPT-2 built with ``transformers`` (a test-only
dependency), saved both as ``save_pretrained`` writes it and as the hub's files are laid out,
must give the same logits and the same greedy text after ``load_gpt2``. No network: the hub
download is replaced by fakes, and the mirror is a temporary folder.
"""

import inspect
import json
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import huggingface_hub
import pytest
import torch
from huggingface_hub.utils import LocalEntryNotFoundError
from rigged_models import perturbed_hf_gpt2
from safetensors.torch import save_file
from torch import nn

import helpers.weights as weights
from helpers import attention
from helpers.gpt2_mapping import Source, gpt2_weight_map
from helpers.model import GPT_CONFIG_124M, GPTModel, count_parameters, generate_text_simple
from helpers.weights import (
    GPT2_REPOS,
    WeightsMismatch,
    WeightsUnavailable,
    download_gpt2,
    load_gpt2,
    load_model,
    resolve_gpt2_size,
)

N_EMBD, N_LAYER, N_HEAD, N_POSITIONS, VOCAB = 64, 2, 4, 64, 50257
TINY = {  # our config of the same model
    "vocab_size": VOCAB,
    "context_length": N_POSITIONS,
    "emb_dim": N_EMBD,
    "n_heads": N_HEAD,
    "n_layers": N_LAYER,
    "drop_rate": 0.0,
    "qkv_bias": True,
}
PROMPT = torch.tensor([[464, 1049, 286, 8950, 318, 257, 11, 314]])  # any 8 ids


# --- a small random GPT-2 from transformers, in both file layouts ----------------------------


@pytest.fixture(scope="module")
def hf_model():
    pytest.importorskip("transformers")
    model = perturbed_hf_gpt2(N_EMBD, N_LAYER, N_HEAD, N_POSITIONS, VOCAB)
    model.generation_config.eos_token_id = None  # always generate all 20 tokens
    model.generation_config.pad_token_id = 0
    return model


@pytest.fixture(scope="module")
def pretrained_folder(hf_model, tmp_path_factory):
    """As ``save_pretrained`` writes it: names start with ``transformer.``."""
    folder = tmp_path_factory.mktemp("save_pretrained")
    hf_model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def hub_folder(hf_model, tmp_path_factory):
    """As the hub's ``openai-community/gpt2`` files are: no prefix, the causal masks stored as
    ``h.N.attn.bias`` / ``masked_bias``, plus (for the test) a tied copy of the output head."""
    folder = tmp_path_factory.mktemp("hub")
    state = {
        name.removeprefix("transformer."): tensor.detach().clone().contiguous()
        for name, tensor in hf_model.state_dict().items()
        if name != "lm_head.weight"
    }
    for i in range(N_LAYER):
        state[f"h.{i}.attn.bias"] = torch.tril(torch.ones(N_POSITIONS, N_POSITIONS)).view(
            1, 1, N_POSITIONS, N_POSITIONS
        )
        state[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    state["lm_head.weight"] = state["wte.weight"].clone()
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    hf_model.config.to_json_file(folder / "config.json")
    return folder


@pytest.fixture(params=["pretrained_folder", "hub_folder"])
def folder(request):
    return request.getfixturevalue(request.param)


def logits_of(model, ids=PROMPT):
    with torch.no_grad():
        out = model(ids)
    return getattr(out, "logits", out)


# --- the mapping is exact ---------------------------------------------------------------------


def test_logits_match_hugging_face(hf_model, folder):
    model = load_gpt2(folder)
    assert isinstance(model, GPTModel) and not model.training
    assert model.out_head.weight is model.tok_emb.weight  # tied, as in GPT-2
    assert count_parameters(model) == hf_model.num_parameters()
    diff = (logits_of(model) - logits_of(hf_model)).abs().max().item()
    assert diff <= 1e-4


def test_greedy_generation_matches_hugging_face(hf_model, folder):
    model = load_gpt2(folder)
    ours = generate_text_simple(model, PROMPT, max_new_tokens=20, context_size=N_POSITIONS)
    theirs = hf_model.generate(
        PROMPT, attention_mask=torch.ones_like(PROMPT), max_new_tokens=20, do_sample=False
    )
    assert ours.shape == (1, PROMPT.shape[1] + 20)
    assert ours.tolist() == theirs.tolist()


def test_config_follows_the_files_config_json(pretrained_folder):
    model = load_gpt2(pretrained_folder)
    block = model.trf_blocks[0]
    assert len(model.trf_blocks) == N_LAYER and block.att.num_heads == N_HEAD
    assert block.att.W_query.bias is not None  # qkv_bias=True
    assert model.pos_emb.weight.shape == (N_POSITIONS, N_EMBD)
    assert block.drop_shortcut.p == 0.1  # resid_pdrop of the config, as the book's 5.5 uses
    assert load_gpt2(pretrained_folder, drop_rate=0.0).trf_blocks[0].drop_shortcut.p == 0.0
    # the causal masks are rebuilt (the model was allocated empty)
    assert torch.equal(block.att.mask, torch.triu(torch.ones(N_POSITIONS, N_POSITIONS), 1))


def test_dtype_is_converted_while_copying(hf_model, pretrained_folder):
    model = load_gpt2(pretrained_folder, dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    diff = (logits_of(model).float() - logits_of(hf_model)).abs().max().item()
    assert diff < 0.5  # bfloat16 keeps ~3 significant digits


# --- the mapping notebook 06 shows, and that load_gpt2 follows ---------------------------------


def test_the_mapping_covers_every_parameter_of_gpt2_small_once():
    with torch.device("meta"):  # shapes only: no memory, no initialisation worth the time
        model = GPTModel({**GPT_CONFIG_124M, "qkv_bias": True})
    params = [name for name, _ in model.named_parameters()]
    weight_map = gpt2_weight_map(GPT_CONFIG_124M["n_layers"])
    assert len(params) == len(set(params)) == len(weight_map)  # a dict: each name once
    assert set(weight_map) == set(params)


def test_the_mapping_reads_every_tensor_of_a_gpt2_file_into_the_right_shape(hf_model):
    theirs = {k.removeprefix("transformer."): v for k, v in hf_model.state_dict().items()}
    theirs.pop("lm_head.weight")  # the tied head: the same matrix as wte
    with torch.device("meta"):
        ours = dict(GPTModel(TINY).named_parameters())
    weight_map = gpt2_weight_map(N_LAYER)
    assert {source.name for source in weight_map.values()} == set(theirs)
    for name, source in weight_map.items():
        assert source.take(theirs[source.name]).shape == ours[name].shape, name
        assert source.file_shape(ours[name].shape) == tuple(theirs[source.name].shape), name


def test_the_mapping_states_the_books_three_twists():
    weight_map = gpt2_weight_map(12)
    # c_attn holds [query | key | value]: each of ours takes its third, the weight transposed
    qkv = [weight_map[f"trf_blocks.5.att.{w}.weight"] for w in ("W_query", "W_key", "W_value")]
    assert qkv == [Source("h.5.attn.c_attn.weight", transpose=True, third=k) for k in range(3)]
    assert weight_map["trf_blocks.5.att.W_value.bias"] == Source("h.5.attn.c_attn.bias", third=2)
    # every Conv1D matrix (c_attn, c_proj, c_fc) is transposed, and nothing else
    for source in weight_map.values():
        assert source.transpose == (".c_" in source.name and source.name.endswith(".weight"))
    # the output head is the token embedding
    assert weight_map["out_head.weight"] == weight_map["tok_emb.weight"] == Source("wte.weight")


def test_the_mapping_is_short_enough_to_read_in_a_notebook():
    lines, _ = inspect.getsourcelines(gpt2_weight_map)
    assert len(lines) <= 40


def test_load_gpt2_follows_the_mapping(hf_model, hub_folder, monkeypatch):
    calls = []

    def spy(n_layers):
        calls.append(n_layers)
        return gpt2_weight_map(n_layers)

    monkeypatch.setattr(weights, "gpt2_weight_map", spy)
    model = load_gpt2(hub_folder)
    assert calls == [N_LAYER]
    assert (logits_of(model) - logits_of(hf_model)).abs().max().item() <= 1e-4


def test_loading_replaces_no_function_of_torch_or_helpers(hub_folder):
    """The model is built without initialising it, but not by swapping out ``torch.nn.init``
    (or ``causal_mask``) for the whole process: while it is built, every one of them is still
    the original, and another thread initialises and masks as usual."""
    def functions():
        found = {f"torch.nn.init.{k}": v for k, v in vars(torch.nn.init).items() if callable(v)}
        found |= {"torch.triu": torch.triu, "torch.empty_like": torch.empty_like}
        return found | {"helpers.attention.causal_mask": attention.causal_mask}

    before, replaced, other_thread = functions(), set(), []

    def in_another_thread():
        weight = torch.empty(2000)
        torch.nn.init.normal_(weight)
        mask = attention.causal_mask(3)
        other_thread.append((weight.device.type, weight.std().item(), mask.tolist()))

    def observe(*args):  # called whenever a module registers a parameter or a buffer
        replaced.update(name for name, f in functions().items() if f is not before[name])
        if not other_thread:  # once, in the middle of the build
            worker = threading.Thread(target=in_another_thread)
            worker.start()
            worker.join()

    hooks = [
        torch.nn.modules.module.register_module_parameter_registration_hook(observe),
        torch.nn.modules.module.register_module_buffer_registration_hook(observe),
    ]
    try:
        load_gpt2(hub_folder)
    finally:
        for hook in hooks:
            hook.remove()
    assert other_thread, "the hooks never ran: nothing was observed during the build"
    assert replaced == set()
    assert functions() == before
    device, std, mask = other_thread[0]
    assert device == "cpu" and 0.9 < std < 1.1  # a real normal_, not a no-op on the meta device
    assert mask == [[0.0, 1.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]


# --- errors that say what is wrong ------------------------------------------------------------


def test_shape_mismatch_names_the_tensors_and_the_files_config(pretrained_folder):
    narrow = {**TINY, "emb_dim": 32}
    with pytest.raises(WeightsMismatch) as err:
        load_gpt2(pretrained_folder, config=narrow)
    message = str(err.value)
    assert "h.0.attn.c_attn.weight: file has (64, 192), model expects (32, 96)" in message
    assert "wte.weight: file has (50257, 64), model expects (50257, 32)" in message
    assert "the file implies vocab_size=50257, context_length=64, emb_dim=64, n_layers=2" in message


def test_missing_and_unexpected_tensors_are_listed(pretrained_folder):
    with pytest.raises(WeightsMismatch, match=r"missing \(12\): h\.2\.ln_1\.weight"):
        load_gpt2(pretrained_folder, config={**TINY, "n_layers": 3})
    with pytest.raises(WeightsMismatch, match=r"unexpected \(12\): h\.1\."):
        load_gpt2(pretrained_folder, config={**TINY, "n_layers": 1})


def test_cut_short_file_is_reported(pretrained_folder, tmp_path):
    data = (pretrained_folder / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut short"):
        load_model(tmp_path)


def test_missing_files_and_unknown_names(tmp_path):
    with pytest.raises(FileNotFoundError, match="has no model.safetensors"):
        load_gpt2(tmp_path)
    with pytest.raises(FileNotFoundError, match="No such file or folder"):
        load_gpt2(tmp_path / "nowhere.pth")
    with pytest.raises(ValueError, match=r"Unknown GPT-2 size 'gpt3'.*gpt2-small \(124M\)"):
        load_gpt2("gpt3")


# --- sizes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("gpt2-small (124M)", "gpt2-small (124M)"),
        ("small", "gpt2-small (124M)"),
        ("124M", "gpt2-small (124M)"),
        ("gpt2", "gpt2-small (124M)"),
        (" GPT2-Medium ", "gpt2-medium (355M)"),
        ("355m", "gpt2-medium (355M)"),
        ("openai-community/gpt2-large", "gpt2-large (774M)"),
        ("xl", "gpt2-xl (1558M)"),
        ("1558M", "gpt2-xl (1558M)"),
    ],
)
def test_size_names(name, size):
    assert resolve_gpt2_size(name) == size


def test_unknown_size_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"gpt2-small \(124M\), gpt2-medium \(355M\)"):
        resolve_gpt2_size("huge")


# --- .pth state dicts and our own folders -----------------------------------------------------


def test_pth_round_trip_keeps_the_weights_and_the_tie(pretrained_folder, tmp_path):
    model = load_gpt2(pretrained_folder)
    path = tmp_path / "gpt2-tiny.pth"
    torch.save(model.state_dict(), path)  # what the book does; includes the mask buffers
    with pytest.raises(ValueError, match="n_heads=4"):
        load_gpt2(path)  # emb_dim 64 is no GPT-2 size: the number of heads must be given
    loaded = load_gpt2(path, n_heads=N_HEAD)
    assert loaded.out_head.weight is loaded.tok_emb.weight
    assert torch.equal(logits_of(loaded), logits_of(model))


def test_book_state_dict_and_training_checkpoint(tmp_path):
    """An untied GPTModel, as the book trains it; heads inferred from a GPT-2 width (768)."""
    cfg = {**GPT_CONFIG_124M, "vocab_size": 100, "context_length": 16, "n_layers": 1}
    torch.manual_seed(1)
    model = GPTModel(cfg).eval()
    path = tmp_path / "model_and_optimizer.pth"
    optimizer = torch.optim.AdamW(model.parameters())
    checkpoint = {"model_state_dict": model.state_dict(), "optimizer": optimizer.state_dict()}
    torch.save(checkpoint, path)  # as the book's chapter 5 saves a training run
    loaded = load_model(path)
    block = loaded.trf_blocks[0]
    assert block.att.num_heads == 12 and block.att.W_query.bias is None
    assert loaded.out_head.weight is not loaded.tok_emb.weight
    ids = torch.tensor([[1, 2, 3]])
    assert torch.equal(logits_of(loaded, ids), logits_of(model, ids))


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "whole_model.pth"
    torch.save({"model": nn.Linear(2, 2)}, path)  # a pickled module, not a state dict
    with pytest.raises(ValueError, match="only weights"):
        load_model(path)


@pytest.mark.parametrize("kept", ["out_head.weight", "tok_emb.weight"])
def test_our_own_folder_with_a_tied_head(pretrained_folder, tmp_path, kept):
    """safetensors stores a tied matrix once: ``save_model`` keeps the head's name, a
    checkpoint writer may keep the embedding's; both load as one tied matrix."""
    model = load_gpt2(pretrained_folder)
    state = {k: v.contiguous() for k, v in model.state_dict().items() if not k.endswith(".mask")}
    del state[({"out_head.weight", "tok_emb.weight"} - {kept}).pop()]
    save_file(state, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps({**TINY, "drop_rate": 0.2}))
    loaded = load_model(tmp_path)
    assert loaded.out_head.weight is loaded.tok_emb.weight
    assert loaded.trf_blocks[0].drop_shortcut.p == 0.2
    assert torch.equal(logits_of(loaded), logits_of(model))


# --- download: mirror, hub cache, offline -----------------------------------------------------


class FakeHub:
    """Stands in for ``huggingface_hub.hf_hub_download``: a cache of ``cached`` folders per repo;
    a network download raises ``network_error`` (or fails the test if none is expected)."""

    def __init__(self, cached=None, network_error=None):
        self.cached, self.network_error, self.calls = cached or {}, network_error, []

    def __call__(self, repo_id, filename, *, local_files_only=False, **kwargs):
        self.calls.append((repo_id, filename, local_files_only))
        if repo_id in self.cached:
            return str(self.cached[repo_id] / filename)
        if local_files_only:
            raise LocalEntryNotFoundError("not in the cache")
        if self.network_error is None:
            pytest.fail("tried to download")
        raise self.network_error


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """A clean environment: no mirror, online flags off, the hub download faked."""
    for name in ("LLM_DATA_MIRROR", "LLM_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    fake = FakeHub()
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake)
    return fake


def assert_one_clear_sentence(message, *parts):
    assert message.endswith(".") and ". " not in message and "\n" not in message
    for part in parts:
        assert part in message


def test_offline_flag_fails_fast_with_one_sentence(hub, monkeypatch):
    monkeypatch.setenv("LLM_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(WeightsUnavailable) as err:
        load_gpt2("gpt2-medium (355M)")
    assert time.perf_counter() - start < 15  # no retries: the hub's back-off alone takes ~20 s
    assert_one_clear_sentence(
        str(err.value), "gpt2-medium (355M)", "LLM_OFFLINE is set", "config.json",
        "model.safetensors", "$LLM_DATA_MIRROR/gpt2-medium",
    )
    assert all(local_only for *_, local_only in hub.calls)  # looked in the cache only


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        # what huggingface_hub raises when it cannot reach the hub and has no cached copy
        (LocalEntryNotFoundError("Cannot find the file. Check your connection"), "(no connection"),
        (ConnectionError("Name or service not known. Retry"), "(ConnectionError: Name or service"),
        (TimeoutError("read timed out"), "(the connection timed out)"),
    ],
    ids=["hub-offline", "connection-error", "timeout"],
)
def test_connection_errors_become_one_sentence(hub, monkeypatch, error, reason):
    monkeypatch.setattr("helpers.hub.unreachable_reason", lambda: None)  # "the network is up"
    hub.network_error = error
    with pytest.raises(WeightsUnavailable) as err:
        download_gpt2("small")
    assert_one_clear_sentence(str(err.value), "gpt2-small (124M)", reason, "$LLM_DATA_MIRROR/gpt2 ")
    assert ("openai-community/gpt2", "config.json", False) in hub.calls


def test_an_unreachable_hub_refuses_before_any_download(hub, monkeypatch):
    monkeypatch.setattr("helpers.hub.unreachable_reason", lambda: "the hub room's check")
    with pytest.raises(WeightsUnavailable, match=r"\(the hub room's check\)"):
        download_gpt2("small")
    assert hub.calls and all(local_only for *_, local_only in hub.calls)


def test_unreachable_hub_is_detected_in_seconds(hub, monkeypatch):
    from huggingface_hub import constants

    for name in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    start = time.perf_counter()
    with pytest.raises(WeightsUnavailable, match="127.0.0.1 is unreachable"):
        download_gpt2("small")  # the fake hub fails the test if a download is attempted
    assert time.perf_counter() - start < 15  # refused at once, not retried for ~20 s


def test_hub_cache_is_used_offline(hub, monkeypatch, tmp_path):
    monkeypatch.setenv("LLM_OFFLINE", "1")
    hub.cached["openai-community/gpt2-large"] = tmp_path
    assert download_gpt2("gpt2-large") == tmp_path


def test_mirror_is_looked_at_first(hub, monkeypatch, tmp_path, pretrained_folder):
    monkeypatch.setenv("LLM_DATA_MIRROR", str(tmp_path))
    (tmp_path / "gpt2-medium").mkdir()
    (tmp_path / "gpt2-medium" / "model.safetensors").write_bytes(b"")
    assert download_gpt2("355M") == tmp_path / "gpt2-medium"
    assert hub.calls == []
    # a size name loads the mirror's copy with that size's config ...
    shutil.copytree(pretrained_folder, tmp_path / "gpt2")
    with monkeypatch.context() as patch:
        patch.setattr(weights, "gpt2_config", lambda size: TINY)
        model = load_gpt2("gpt2")
    assert model.tok_emb.weight.shape == (VOCAB, N_EMBD)
    # ... and a copy of the wrong size says so
    with pytest.raises(WeightsMismatch, match=r"GPTModel with .*\(like gpt2-small \(124M\)\)"):
        load_gpt2("gpt2")


def test_every_size_has_a_repo():
    assert set(GPT2_REPOS) == {resolve_gpt2_size(s) for s in ("small", "medium", "large", "xl")}


# --- memory: one model, not two ---------------------------------------------------------------


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux's RssAnon")
def test_peak_memory_is_about_one_model(tmp_path):
    """Load a ~58 MB checkpoint in a fresh process and sample its resident memory (VmRSS: the
    file's pages count too, were it memory-mapped) while loading: it should grow by ~1x the file."""
    d = 256  # 50257 x 256 floats: a 51 MB embedding dominates, as in the real GPT-2
    torch.manual_seed(0)
    state = {"wte.weight": torch.randn(VOCAB, d), "wpe.weight": torch.randn(64, d)}
    state |= {"ln_f.weight": torch.ones(d), "ln_f.bias": torch.zeros(d)}
    shapes = {"ln_1": (d,), "ln_2": (d,), "attn.c_attn": (d, 3 * d), "attn.c_proj": (d, d)}
    shapes |= {"mlp.c_fc": (d, 4 * d), "mlp.c_proj": (4 * d, d)}
    for i in range(2):
        for name, shape in shapes.items():
            state[f"h.{i}.{name}.weight"] = torch.randn(shape)
            state[f"h.{i}.{name}.bias"] = torch.randn(shape[-1])
    save_file(state, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(
        json.dumps({"vocab_size": VOCAB, "n_positions": 64, "n_embd": d, "n_layer": 2, "n_head": 4})
    )
    size = (tmp_path / "model.safetensors").stat().st_size
    del state

    script = textwrap.dedent(
        """
        import sys, threading, time
        import torch
        from helpers.weights import load_model

        # The first model built on the meta device imports PyTorch's Python meta kernels
        # (~70 MB of modules, once per process): a warm-up keeps that out of the measurement.
        with torch.device("meta"):
            torch.nn.Embedding(2, 2)
            torch.triu(torch.ones(2, 2), diagonal=1)

        def rss():
            with open("/proc/self/status") as f:
                return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS"))

        base, peak, done = rss(), [0], False
        def sample():
            while not done:
                peak[0] = max(peak[0], rss())
                time.sleep(0.0005)
        sampler = threading.Thread(target=sample)
        sampler.start()
        model = load_model(sys.argv[1])
        done = True
        sampler.join()
        print(max(peak[0], rss()) - base)
        """
    )
    repo_root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        cwd=repo_root, capture_output=True, text=True, timeout=120, check=True,
    )
    increase = int(result.stdout.split()[-1])
    assert increase <= 1.3 * size, f"peak grew by {increase / size:.2f}x the checkpoint"


def test_base_model_falls_back_to_notebook_06s_model(tmp_path, monkeypatch, capsys):
    from helpers.checkpoint import save_checkpoint
    from helpers.weights import base_model_dir, load_base_model

    monkeypatch.setenv("LLM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LLM_OFFLINE", "1")
    monkeypatch.setenv("LLM_PROFILE", "smoke")
    monkeypatch.delenv("LLM_DATA_MIRROR", raising=False)
    with pytest.raises(WeightsUnavailable, match="run notebook 06 once"):
        load_base_model()

    cfg = {"vocab_size": 300, "context_length": 16, "emb_dim": 32, "n_heads": 2,
           "n_layers": 2, "drop_rate": 0.1, "qkv_bias": False}
    torch.manual_seed(0)
    saved = GPTModel(cfg).eval()
    save_checkpoint(base_model_dir(), saved, config=cfg)
    model, name = load_base_model(drop_rate=0.0)
    assert name == "base-smoke"
    assert "notebook 06 pretrained" in capsys.readouterr().out
    ids = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        assert torch.equal(model(ids), saved(ids))
    assert all(m.p == 0.0 for m in model.modules() if isinstance(m, torch.nn.Dropout))


def _notebook06_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LLM_PROFILE", "smoke")


def test_notebook06_model_missing_says_to_run_notebook_06(tmp_path, monkeypatch):
    from helpers.weights import load_notebook06_model

    _notebook06_data_dir(tmp_path, monkeypatch)
    with pytest.raises(WeightsUnavailable, match=r"base-smoke.*run notebook 06 once"):
        load_notebook06_model()


@pytest.mark.parametrize("tied", [True, False])
def test_notebook06_model_loads_back_equal(tmp_path, monkeypatch, tied):
    from helpers.checkpoint import save_checkpoint
    from helpers.weights import base_model_dir, load_notebook06_model

    _notebook06_data_dir(tmp_path, monkeypatch)
    cfg = {"vocab_size": 300, "context_length": 16, "emb_dim": 32, "n_heads": 2,
           "n_layers": 2, "drop_rate": 0.1, "qkv_bias": False}
    torch.manual_seed(0)
    saved = GPTModel(cfg).eval()
    if tied:  # as notebook 06 trains its base model
        saved.out_head.weight = saved.tok_emb.weight
    save_checkpoint(base_model_dir(), saved, config=cfg)

    model = load_notebook06_model(drop_rate=0.0)
    assert isinstance(model, GPTModel) and not model.training
    assert (model.out_head.weight is model.tok_emb.weight) == tied
    assert count_parameters(model) == count_parameters(saved)
    for (name, a), (_, b) in zip(model.state_dict().items(), saved.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    ids = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        assert torch.equal(model(ids), saved(ids))
    assert all(m.p == 0.0 for m in model.modules() if isinstance(m, torch.nn.Dropout))
    kept = load_notebook06_model()  # without drop_rate: the saved config's
    assert all(m.p == 0.1 for m in kept.modules() if isinstance(m, torch.nn.Dropout))
