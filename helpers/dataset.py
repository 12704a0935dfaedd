"""Phase 02, data sampling: cut a long token sequence into (input, target) training windows.

An LLM learns to predict the next token, so each training example is a window of
``max_length`` tokens and the same window shifted one token to the right. ``stride`` is how far
the window moves between examples: ``stride == max_length`` gives non-overlapping windows,
``stride == 1`` gives one example per position (many examples, heavily overlapping).
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from .validate import check_int


def window_starts(num_tokens: int, max_length: int, stride: int) -> range:
    """Start positions of the windows over ``num_tokens`` tokens.

    A window needs ``max_length + 1`` tokens (its targets reach one further), so the last start
    is ``num_tokens - max_length - 1``. This is the book's ``range(0, len - max_length, stride)``.
    """
    check_int(max_length, "max_length", minimum=1)  # 2.5 or True is a mistake, not a length
    check_int(stride, "stride", minimum=1)
    return range(0, num_tokens - max_length, stride)


class GPTDatasetV1(Dataset):
    """Input/target windows over a text, as in the book.

    The book stores every window as its own tensor; here the text is stored once as one tensor
    and windows are sliced from it on access. Same examples, same order, a fraction of the memory
    when windows overlap (stride 1 on a long text would otherwise copy it ``max_length`` times).
    """

    def __init__(self, txt: str, tokenizer, max_length: int, stride: int):
        try:
            token_ids = tokenizer.encode(txt, allowed_special={"<|endoftext|>"})
        except TypeError:  # tokenizers without special-token options (SimpleTokenizerV1/V2)
            token_ids = tokenizer.encode(txt)
        if len(token_ids) < max_length + 1:
            raise ValueError(
                f"The text is {len(token_ids)} tokens long, but one training window needs "
                f"max_length + 1 = {max_length + 1} tokens (inputs plus the next-token target). "
                f"Use a longer text or a smaller max_length."
            )
        self.token_ids = torch.tensor(token_ids, dtype=torch.long)
        self.max_length = max_length
        self.stride = stride
        self.starts = window_starts(len(token_ids), max_length, stride)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        start = self.starts[idx]  # range indexing raises IndexError past the end, as it should
        window = self.token_ids[start : start + self.max_length + 1]
        return window[:-1], window[1:]


def create_dataloader_v1(
    txt: str,
    batch_size: int = 4,
    max_length: int = 256,
    stride: int = 128,
    shuffle: bool = True,
    drop_last: bool = True,
    num_workers: int = 0,
    tokenizer=None,
) -> DataLoader:
    """The book's dataloader over GPT-2 tokens (``tokenizer`` defaults to GPT-2's BPE).

    ``drop_last`` drops a final batch smaller than ``batch_size``, which would otherwise give
    a noisy, unevenly weighted last step in each epoch.
    """
    if tokenizer is None:
        from .tokenizer import gpt2_tokenizer

        tokenizer = gpt2_tokenizer()
    dataset = GPTDatasetV1(txt, tokenizer, max_length, stride)
    if drop_last and len(dataset) < batch_size:
        raise ValueError(
            f"The text gives only {len(dataset)} windows, fewer than batch_size={batch_size}, "
            f"so drop_last=True would leave no batch at all. Use a smaller batch_size or stride, "
            f"a longer text, or drop_last=False."
        )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        num_workers=num_workers,
    )
