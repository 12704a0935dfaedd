"""The tested code behind the notebooks: one module per phase of building a GPT.

The teaching modules, the code the notebooks show:

runtime    device, seeding, run-size profiles; eval_mode, interrupts_deferred (all notebooks)
concepts   autograd example, SimpleNet                 (00)
data       the download registry and ``fetch``         (all notebooks)
tokenizer  simple tokenizers, BPE from scratch, GPT-2  (01)
dataset    sliding-window dataset and dataloader       (02)
embeddings one-hot lookup, sinusoids, RoPE             (03)
attention  self, causal and multi-head attention       (04)
model      LayerNorm, GELU, blocks, GPTModel, sizes    (05)
train      losses, the book's training loop, plots     (06)
generate   greedy, temperature, top-k, top-p, eos      (06)
gpt2_mapping  GPT-2's tensor names -> ours            (06)
weights    OpenAI's GPT-2 weights; the fallback model  (06)
lora       LoRA adapters: wrap, freeze, merge, save    (07)
classify   SMS spam data, classifier training, metrics (08)
instruct   instruction data, collate, responses, scores (09)
display    ``show_source`` and small display helpers   (all notebooks)
exercises  checkers for the end-of-notebook exercises  (all notebooks)
widgets    interactive views; logic in pure functions  (all notebooks)

The engine, each concern in its own module, extending the teaching objects:

bpe_train, bpe_files, bpe_gpt2, bpe_checks   fast BPE training, file format, GPT-2 import, checks
fused_attention    MultiHeadAttention with PyTorch's fused kernel (training speed)
kv_cache           KVCache, CachedGPT: generation that reuses earlier keys and values
decoding_kernels   fused LayerNorm/GELU, core-parallel one-row products (cached steps)
training_run       train_model_resumable, train_classifier: checkpoints, exact resume, live updates
train_options      TrainingOptions: bf16, fused AdamW, compile, padded head, chunked loss
checkpoint         atomic safetensors checkpoints, exact resume
atomic             files written under a temporary name, then renamed
hub, safetensors_reader, weights_config, empty_model   behind load_gpt2
pretrain, prefetch  command-line jobs: pretraining at scale, fetching before class
"""

__version__ = "0.1.0"
