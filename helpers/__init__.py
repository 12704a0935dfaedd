"""The tested code behind the notebooks: one module per phase of building a GPT.

runtime    device, seeding, run-size profiles          (all notebooks)
concepts   autograd example, SimpleNet                 (00)
data       the download registry and ``fetch``         (all notebooks)
tokenizer  simple tokenizers, BPE from scratch, GPT-2  (01)
dataset    sliding-window dataset and dataloader       (02)
embeddings one-hot lookup, sinusoids, RoPE             (03)
attention  self, causal and multi-head attention       (04)
model      LayerNorm, GELU, blocks, GPTModel, sizes    (05)
train      losses, the training loop, loss plots       (06)
checkpoint atomic safetensors checkpoints, exact resume (06)
generate   greedy, temperature, top-k, top-p, eos      (06)
weights    OpenAI's GPT-2 weights; the fallback model  (06)
lora       LoRA adapters: wrap, freeze, merge, save    (07)
classify   SMS spam data, classifier training, metrics (08)
instruct   instruction data, collate, responses, scores (09)
display    ``show_source`` and small display helpers   (all notebooks)
exercises  checkers for the end-of-notebook exercises  (all notebooks)
widgets    interactive views; logic in pure functions  (all notebooks)
"""

__version__ = "0.1.0"
