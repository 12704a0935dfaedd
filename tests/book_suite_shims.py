"""A pytest plugin for running the book's own test files against ``helpers`` (see test_book_suite.py).

Loaded with ``-p book_suite_shims`` in a separate pytest process, never in ours: it replaces modules
in ``sys.modules`` and patches ``urllib`` and ``tiktoken`` for the whole process.

- ``BOOK_SUITE_SHIMS`` (JSON) says which book names become which of our objects, e.g.
  ``{"llms_from_scratch.ch04": {"GPTModel": "helpers.model:GPTModel"}}``. Each listed book module
  is replaced by a copy of its namespace with those names swapped; every other name stays the
  book's own object.
- Downloads: the URLs of ``helpers.data.REGISTRY`` are answered with the verified files that
  ``helpers.data.fetch`` finds (``LLM_DATA_MIRROR``); any other URL fails as if offline.
  ``tiktoken.get_encoding("gpt2")`` returns ``helpers.tokenizer.gpt2_tokenizer()``, which builds
  the same encoding from the mirror's files instead of downloading them.
"""

from __future__ import annotations

import email.message
import importlib
import io
import json
import os
import sys
import types
import urllib.error
import urllib.request
import urllib.response
import zipfile

SHIMS_ENV = "BOOK_SUITE_SHIMS"


def resolve(target: str):
    """``"helpers.model:GPTModel"`` -> the object."""
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def install_shims(mapping: dict[str, dict[str, str]]) -> None:
    # Import every book module before swapping any: a book module imported later would copy our
    # objects into its namespace (ch05 does `from .ch04 import generate_text_simple`), and then the
    # book objects we keep would no longer be entirely the book's.
    books = {name: importlib.import_module(name) for name in mapping}
    for book_name, names in mapping.items():
        book = books[book_name]
        missing = [name for name in names if not hasattr(book, name)]
        if missing:  # a renamed book object must not turn into a silently added one
            raise AttributeError(f"{book_name} has no {', '.join(missing)}; update the mapping")
        shim = types.ModuleType(book_name, book.__doc__)
        shim.__dict__.update(vars(book))
        shim.__dict__.update({name: resolve(target) for name, target in names.items()})
        sys.modules[book_name] = shim
        parent, _, child = book_name.rpartition(".")
        setattr(sys.modules[parent], child, shim)  # `import llms_from_scratch; llms_from_scratch.ch04`


def mirrored_bytes(entry) -> bytes:
    """What downloading ``entry.url`` gives, from the verified file ``helpers.data.fetch`` finds."""
    from helpers.data import fetch

    payload = fetch(entry.name, quiet=True).read_bytes()
    if entry.zip_member is None:
        return payload
    # The mirror keeps only the zip's member; the book's code unzips what it downloads.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(entry.zip_member, payload)
    return buffer.getvalue()


def patch_downloads() -> None:
    from helpers.data import REGISTRY

    entries = {entry.url: entry for entry in REGISTRY.values()}

    def payload_for(url: str) -> bytes:
        if url not in entries:
            raise urllib.error.URLError(f"offline test run: {url} is not a file of helpers.data.REGISTRY")
        return mirrored_bytes(entries[url])

    def urlopen(url, *args, **kwargs):
        url = getattr(url, "full_url", url)  # a urllib.request.Request or a string
        body = payload_for(url)
        headers = email.message.Message()
        headers["Content-Length"] = str(len(body))
        return urllib.response.addinfourl(io.BytesIO(body), headers, url, 200)

    def urlretrieve(url, filename, *args, **kwargs):  # the book always names the file
        with open(filename, "wb") as f:
            f.write(payload_for(url))
        return filename, email.message.Message()

    urllib.request.urlopen = urlopen
    urllib.request.urlretrieve = urlretrieve

    import tiktoken

    from helpers.tokenizer import gpt2_tokenizer

    tiktoken_get_encoding = tiktoken.get_encoding

    def get_encoding(name: str):
        return gpt2_tokenizer() if name == "gpt2" else tiktoken_get_encoding(name)

    tiktoken.get_encoding = get_encoding


def pytest_configure(config) -> None:
    # Before collection, so the book's test files import the shims and see the patches.
    patch_downloads()
    install_shims(json.loads(os.environ.get(SHIMS_ENV, "{}")))


def pytest_report_header(config) -> list[str]:
    mapping = json.loads(os.environ.get(SHIMS_ENV, "{}"))
    return [f"book_suite_shims: {book}.{name} -> {target}"
            for book, names in mapping.items() for name, target in names.items()]
