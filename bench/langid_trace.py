#!/usr/bin/python3
"""Side-by-side trace of graphrun and PyTorch on graphs/langid.yaml from the SAME weights
and the SAME batch order (no shuffle), so seed effects (initial draw, batch order) drop out.

PyTorch's default init for --seed is written as safetensors, graphrun trains from it
(--init, train.shuffle=false, train.max_steps=k), PyTorch takes the same steps, and the
weights are compared after each k. A control run of PyTorch from the same weights moved by
one float32 ulp shows how fast mere rounding differences grow (the training is chaotic:
any 1e-7 difference reaches ~3e-2 relative after ~200 steps).

  /usr/bin/python3 bench/langid_trace.py [--steps 10,50,100,200] [--seed 0]
Needs build/graphrun (tools/build graphrun). Runs with one thread each.
"""
import argparse, json, os, struct, subprocess, sys, tempfile  # noqa: E401

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
sys.path.insert(0, HERE)
import torch_langid as TL  # noqa: E402

# graphrun parameter -> PyTorch state_dict key (gate order i, f, g, o in both).
NAMES = {"embedding.weight": "embedding.weight", "lstm.weight_ih": "lstm.weight_ih_l0", "lstm.weight_hh": "lstm.weight_hh_l0",
         "lstm.bias_ih": "lstm.bias_ih_l0", "lstm.bias_hh": "lstm.bias_hh_l0", "logits.weight": "dense.weight", "logits.bias": "dense.bias"}


def read_st(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8:8 + n])
    header.pop("__metadata__", None)
    out = {}
    for k, v in header.items():
        s, e = v["data_offsets"]
        out[k] = np.frombuffer(b[8 + n + s:8 + n + e], dtype="<f4").reshape(v["shape"]).copy()
    return out


def write_st(path, tensors):
    header, blobs, off = {}, [], 0
    for k, a in tensors.items():
        raw = np.ascontiguousarray(a, dtype="<f4").tobytes()
        header[k] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blobs.append(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def to_graphrun(model):
    sd = model.state_dict()
    return {g: sd[t].numpy().copy() for g, t in NAMES.items()}


def torch_trajectory(params, train, steps, batch=64):
    model = TL.LangId()
    model.load_state_dict({**model.state_dict(), **{t: torch.from_numpy(params[g].copy()) for g, t in NAMES.items()}})
    opt = torch.optim.Adam(model.parameters(), lr=0.002, betas=(0.9, 0.999), eps=1e-8)
    ids, lengths, labels = train
    snaps = {}
    for s in range(max(steps)):
        i = (s * batch) % len(ids)
        idx = torch.arange(i, min(i + batch, len(ids)))
        loss = torch.nn.functional.cross_entropy(model(ids[idx], lengths[idx]), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if s + 1 in steps:
            snaps[s + 1] = to_graphrun(model)
    return snaps


def rel(a, b):
    return (sum(np.sum((a[k] - b[k]) ** 2) for k in NAMES) / sum(np.sum(b[k] ** 2) for k in NAMES)) ** 0.5


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", default="10,50,100,200")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    steps = sorted(int(s) for s in args.steps.split(","))
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    init = to_graphrun(TL.LangId())
    rng = np.random.default_rng(args.seed)
    ulp = {k: np.where(rng.random(v.shape) < 0.5, np.nextafter(v, np.float32(np.inf)), np.nextafter(v, np.float32(-np.inf)))
           for k, v in init.items()}
    train = TL.load(os.path.join(TL.DATA, "train.tsv"), 64)
    ref, ctl = torch_trajectory(init, train, steps), torch_trajectory(ulp, train, steps)
    with tempfile.TemporaryDirectory() as tmp:
        write_st(os.path.join(tmp, "init.safetensors"), init)
        print("step  |graphrun-torch|/|torch|  |torch(1 ulp)-torch|/|torch|")
        for k in steps:
            out = os.path.join(tmp, f"run{k}")
            subprocess.run([os.path.join(ROOT, "build", "graphrun"), "train", os.path.join(ROOT, "graphs", "langid.yaml"), "--threads", "1",
                            "--init", os.path.join(tmp, "init.safetensors"), "--set", "train.shuffle=false", "--set", f"train.max_steps={k}",
                            "--out", out, "--overwrite"], check=True, capture_output=True)
            g = read_st(os.path.join(out, "checkpoint.safetensors"))
            print(f"{k:5d}  {rel(g, ref[k]):.2e}                 {rel(ctl[k], ref[k]):.2e}")


if __name__ == "__main__":
    main()
