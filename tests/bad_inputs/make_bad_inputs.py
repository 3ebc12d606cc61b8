#!/usr/bin/python3
"""Writes the binary and data files of tests/bad_inputs/ (run with Debian's
/usr/bin/python3; the YAML cases and cases.txt are written by hand)."""
import json, os, struct  # noqa: E401
import numpy as np

here = os.path.dirname(os.path.abspath(__file__))


def path(name):
    return os.path.join(here, name)


def save(name, array):
    np.save(path(name), array, allow_pickle=False)


def write(name, data):
    with open(path(name), "wb") as f:
        f.write(data)


rng = np.random.default_rng(0)
# Good data for files_base.yaml: 8 pairs, x1 (8, 6) int32, x2 (8, 8) int64, labels 0/1.
save("x1.npy", rng.integers(1, 40, (8, 6)).astype(np.int32))
save("x2.npy", rng.integers(1, 40, (8, 8)).astype(np.int64))
save("labels.npy", np.array([1, 0] * 4, dtype=np.float32))

good = open(path("x1.npy"), "rb").read()
write("npy_bad_magic.npy", b"\x93NUMPX" + good[6:])
write("npy_bad_version.npy", good[:6] + b"\x07\x00" + good[8:])
write("npy_truncated_header.npy", good[:20])
write("npy_truncated_data.npy", good[:-10])
save("npy_float_ids.npy", np.ones((8, 6), dtype=np.float32))
np.save(path("npy_fortran.npy"), np.asfortranarray(np.ones((8, 6), dtype=np.int32)))
save("npy_wrong_length.npy", np.ones((8, 7), dtype=np.int32))
save("npy_rank1.npy", np.ones(6, dtype=np.int32))
ids = np.ones((8, 6), dtype=np.int32)
ids[2, 4] = 64
ids[5, 0] = -3
save("npy_out_of_vocabulary.npy", ids)
save("npy_nan_labels.npy", np.array([1, 0, np.nan, 1, 0, 1, 0, 1], dtype=np.float32))
save("npy_inf_labels.npy", np.array([1, 0, 1, np.inf, 0, 1, 0, 1], dtype=np.float32))
save("npy_few_labels.npy", np.array([1, 0, 1], dtype=np.float32))

# Text pairs for text_base.yaml.
write("pairs.tsv", "a cat\ta kitten\t1\nthe sea\ta mountain\t0\n".encode())
write("tsv_no_tab.tsv", "a cat\ta kitten\t1\nno tab on this line\n".encode())
write("tsv_bad_utf8.tsv", b"fine\tfine\t1\nbad \xff\xfe byte\tx\t0\n")
write("tsv_empty.tsv", b"")

# Checkpoints for `--init` with ../specs/small_siamese.yaml.
def safetensors(tensors, header_override=None, pad=b""):
    header, data = {}, b""
    for name, array in tensors.items():
        raw = array.astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header_override if header_override is not None else header).encode()
    return struct.pack("<Q", len(text)) + text + data + pad


params = {"left_embedding.weight": (64, 8), "left_lstm.weight_ih": (48, 8), "left_lstm.weight_hh": (48, 12), "left_lstm.bias": (48,),
          "left_dense.weight": (16, 12), "left_dense.bias": (16,), "right_embedding.weight": (64, 8), "right_lstm.weight_ih": (48, 8),
          "right_lstm.weight_hh": (48, 12), "right_lstm.bias": (48,), "right_dense.weight": (16, 12), "right_dense.bias": (16,)}
full = {name: np.zeros(shape, dtype=np.float32) for name, shape in params.items()}
write("st_header_too_long.safetensors", struct.pack("<Q", 1 << 40) + b"{}")
write("st_not_json.safetensors", struct.pack("<Q", 9) + b"not json!")
header = {"left_lstm.bias": {"dtype": "F32", "shape": [48], "data_offsets": [0, 1 << 30]}}
write("st_offsets_out_of_range.safetensors", safetensors({"left_lstm.bias": np.zeros(48)}, header))
header = {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}, "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}
write("st_overlapping.safetensors", safetensors({"a": np.zeros(6)}, header))
wrong = dict(full)
wrong["left_dense.weight"] = np.zeros((12, 16), dtype=np.float32)
write("st_wrong_shape.safetensors", safetensors(wrong))
missing = dict(full)
del missing["right_lstm.bias"], missing["left_dense.bias"]
write("st_missing_tensors.safetensors", safetensors(missing))
extra = dict(full)
extra["center_dense.weight"] = np.zeros(3, dtype=np.float32)
write("st_extra_tensor.safetensors", safetensors(extra))
