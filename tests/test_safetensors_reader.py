"""helpers.safetensors_reader: plain reads of a safetensors file, and clear errors for bad ones."""

import json
import struct

import pytest
import torch
from safetensors.torch import save_file

from helpers.safetensors_reader import SafetensorsReader, check_safetensors


@pytest.fixture
def path(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file({"a": torch.arange(6.0).reshape(2, 3), "b": torch.tensor([1, 2], dtype=torch.int8)},
              str(path))
    return path


def test_shapes_dtypes_and_tensors(path):
    with SafetensorsReader(path) as reader:
        assert reader.shapes == {"a": (2, 3), "b": (2,)}
        assert reader.dtypes == {"a": torch.float32, "b": torch.int8}
        assert torch.equal(reader.get("a"), torch.arange(6.0).reshape(2, 3))
        out = torch.empty(2, dtype=torch.int8)
        reader.read_into("b", out)  # straight into an existing tensor's memory
        assert out.tolist() == [1, 2]
    assert reader.file.closed
    check_safetensors(path)  # a complete file: no error


def test_a_file_cut_short_is_refused_at_once(path):
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(ValueError, match="not a readable safetensors file.*cut short"):
        check_safetensors(path)


def test_a_header_longer_than_the_file_is_refused_before_reading_it(tmp_path):
    path = tmp_path / "huge-header.safetensors"
    path.write_bytes(struct.pack("<Q", 2**62) + b"{}")
    with pytest.raises(ValueError, match=r"header claims 4,611,686,018,427,387,904 bytes of 10"):
        SafetensorsReader(path)


def test_a_file_that_is_not_safetensors(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", 5) + b"hello")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        check_safetensors(path)


def test_a_tensor_that_ends_early_says_so(path):
    reader = SafetensorsReader(path)
    reader.entries["a"] = {**reader.entries["a"], "data_offsets": [0, 10**6]}  # claims more
    with pytest.raises(ValueError, match="ended inside tensor a: it is cut short"):
        reader.read_into("a", torch.empty(250_000))
    reader.close()


def test_a_dtype_a_model_cannot_hold_is_named(tmp_path):
    header = json.dumps({"x": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 2]}}).encode()
    path = tmp_path / "fp8.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\x00\x00")
    with SafetensorsReader(path) as reader, pytest.raises(ValueError, match="dtype F8_E4M3"):
        reader.get("x")
