#!/usr/bin/python3
"""PyTorch reference for the graphrun Siamese benchmark (graphs/siamese.yaml).
Prints one JSON line on stdout; diagnostics go to stderr.

--pairs PREFIX (training only): the batches `bench_siamese --data --save-batches
PREFIX` timed (PREFIX.left.npy, .right.npy, .label.npy; ids padded with 0), in
order, --batch rows each, instead of random full-length ids; every batch is
timed after --warmup untimed steps on the first batch. Each row's length is 1 +
the index of its last non-zero id. --lengths packed (default) runs the LSTMs
over pack_padded_sequence, what PyTorch offers for texts of different lengths;
--lengths last-step runs each batch cut to its longest row without packing and
reads each row's output at its last real step (the same result for a one-way
LSTM). The figure is the batches' samples over their total time."""
import argparse, ctypes, json, os, resource, statistics, sys, time  # noqa: E401

# libgomp's spinning workers fight OpenBLAS's own pthreads for the cores (on 2
# cores, --threads 2 ran ~10x slower than --threads 1). Must be set before torch
# loads libgomp; OMP_WAIT_POLICY=active in the environment restores the default.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.nn.utils.rnn import pack_padded_sequence  # noqa: E402

VOCAB, EMBED, UNITS, OUT, LEN1, LEN2, MARGIN = 1000, 32, 64, 256, 52, 600, 1.0


class Branch(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, EMBED)
        self.lstm = nn.LSTM(EMBED, UNITS, batch_first=True)
        self.dense = nn.Linear(UNITS, OUT)

    def forward(self, x, lengths=None, how="packed"):
        if lengths is None:
            _, (h_n, _) = self.lstm(self.embedding(x))
            return self.dense(h_n[0])  # h_n is (layers=1, N, UNITS)
        if how == "packed":
            packed = pack_padded_sequence(self.embedding(x), lengths, batch_first=True, enforce_sorted=False)
            _, (h_n, _) = self.lstm(packed)
            return self.dense(h_n[0])
        out, _ = self.lstm(self.embedding(x[:, :int(lengths.max())]))
        return self.dense(out[torch.arange(len(x)), lengths - 1])


class Siamese(nn.Module):
    def __init__(self):
        super().__init__()
        # Two separate branches: the engine's graph does not share weights.
        self.left, self.right = Branch(), Branch()

    def forward(self, x1, x2, l1=None, l2=None, how="packed"):
        return F.cosine_similarity(self.left(x1, l1, how), self.right(x2, l2, how), dim=1, eps=1e-8)


def contrastive_loss(similarity, y):
    # d = 1 - cos is a distance (0 = identical), as the loss expects.
    # loss = mean( y * d^2 + (1 - y) * relu(margin - d)^2 ), as graphrun's contrastive_loss
    d = 1.0 - similarity
    return torch.mean(y * d.pow(2) + (1.0 - y) * F.relu(MARGIN - d).pow(2))


class DlInfo(ctypes.Structure):
    _fields_ = [("fname", ctypes.c_char_p), ("fbase", ctypes.c_void_p),
                ("sname", ctypes.c_char_p), ("saddr", ctypes.c_void_p)]


def detect_blas():
    # Debian's torch links plain libblas.so.3, so which BLAS runs depends on the
    # alternatives symlinks. Merely mapped is not enough: OpenBLAS's liblapack
    # maps libopenblas even when libblas.so.3 is the reference one. So find the
    # file whose sgemm_ libtorch_cpu binds to (global scope, then its own deps).
    a = torch.randn(512, 512)
    torch.mm(a, a)
    with open("/proc/self/maps") as f:
        torch_cpu = next(line.split()[-1] for line in f if "libtorch_cpu" in line)
    for lib in (ctypes.CDLL(None), ctypes.CDLL(torch_cpu)):
        if hasattr(lib, "sgemm_"):
            info = DlInfo()
            ctypes.CDLL(None).dladdr(ctypes.cast(lib.sgemm_, ctypes.c_void_p), ctypes.byref(info))
            path = os.path.realpath(info.fname.decode())
            break
    else:
        return "unknown", ""
    kinds = [k for k in ("openblas", "mkl") if k in path.lower()]
    return (kinds[0] if kinds else "reference" if "/blas/libblas.so" in path else "unknown"), path


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--mode", choices=["train", "infer"], default="train")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, help="default 20 train / 10 infer")
    p.add_argument("--batch", type=int, help="default 32 train / 256 infer")
    p.add_argument("--require-openblas", action="store_true")
    p.add_argument("--pairs", metavar="PREFIX", help="train on the batches bench_siamese --save-batches wrote")
    p.add_argument("--lengths", choices=["packed", "last-step"], default="packed", help="with --pairs: how rows of different lengths run")
    args = p.parse_args()
    if args.pairs and args.mode != "train":
        p.error("--pairs times training steps: use it with --mode train")
    train = args.mode == "train"
    steps = args.steps or (20 if train else 10)
    batch = args.batch or (32 if train else 256)

    # Before any work: the interop pool can no longer be resized once used.
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)

    blas, blas_path = detect_blas()
    if blas == "openblas":
        # This torch is built with BLAS_INFO=generic, so set_num_threads does not
        # reach OpenBLAS, whose pthread build would otherwise use every core.
        ctypes.CDLL(blas_path).openblas_set_num_threads(args.threads)
    if args.require_openblas and blas != "openblas":
        print(f"error: torch is using the {blas} BLAS, not OpenBLAS, so timings would "
              "be several times too slow. Fix: apt-get install libopenblas0-pthread", file=sys.stderr)
        sys.exit(2)

    torch.manual_seed(0)
    x1 = torch.randint(1, VOCAB, (batch, LEN1), dtype=torch.int64)
    x2 = torch.randint(1, VOCAB, (batch, LEN2), dtype=torch.int64)
    y = torch.randint(0, 2, (batch,)).float()
    model = Siamese().train(train)
    opt = torch.optim.Adam(model.parameters(), lr=0.001, betas=(0.9, 0.999), eps=1e-8)

    batches = None
    if args.pairs:
        import numpy as np
        left, right = np.load(args.pairs + ".left.npy"), np.load(args.pairs + ".right.npy")
        labels = np.load(args.pairs + ".label.npy")

        def lengths_of(ids):
            nz = ids != 0
            last = ids.shape[1] - np.argmax(nz[:, ::-1], axis=1)
            last[~nz.any(axis=1)] = 1
            return torch.from_numpy(last.astype(np.int64))
        batches = [(torch.from_numpy(left[k:k + batch].astype(np.int64)), torch.from_numpy(right[k:k + batch].astype(np.int64)),
                    torch.from_numpy(labels[k:k + batch].astype(np.float32)), lengths_of(left[k:k + batch]), lengths_of(right[k:k + batch]))
                   for k in range(0, len(labels), batch)]
        steps = len(batches)

    def step(i):
        if batches is not None:
            a, b, yy, la, lb = batches[i]
            opt.zero_grad()
            contrastive_loss(model(a, b, la, lb, args.lengths), yy).backward()
            opt.step()
        elif train:
            opt.zero_grad()
            contrastive_loss(model(x1, x2), y).backward()
            opt.step()
        else:
            with torch.no_grad():
                model(x1, x2)

    times = []
    for i in range(args.warmup + steps):
        t0 = time.perf_counter()
        step(max(i - args.warmup, 0))
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)

    rates = [batch / t for t in times]
    extra = {}
    if batches is not None:  # batches of different lengths: samples over the total time
        # The data's name: the folder PREFIX is in (bench/run: runs/bench/packages/batches-t1: packages).
        extra = {"data": os.path.basename(os.path.dirname(os.path.abspath(args.pairs))), "lengths": args.lengths}
        rates = [batch * len(times) / sum(times)] * len(times)
    print(json.dumps({
        "framework": "pytorch" + ("-" + args.lengths if batches is not None else ""), "version": torch.__version__, "mode": args.mode,
        **extra,
        "threads": args.threads, "batch": batch, "steps": steps,
        "step_ms_median": round(statistics.median(times) * 1000, 3),
        "samples_per_s_median": round(statistics.median(rates), 2),
        "samples_per_s_min": round(min(rates), 2), "samples_per_s_max": round(max(rates), 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "blas": blas,
    }))


if __name__ == "__main__":
    main()
