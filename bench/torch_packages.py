#!/usr/bin/python3
"""PyTorch reference for graphs/packages.yaml and graphs/packages_in_batch.yaml,
measured by graphrun itself (issue 17, items 4 and 5).

usage:
  bench/torch_packages.py RUN TRAIN_PREFIX --out OUT [--loss contrastive|in_batch]
                          [--valid VALID_PREFIX] [--seed S] [--threads P] [--epochs E]
                          [--graphrun build/graphrun] [--no-evaluate] [--json FILE]
  bench/torch_packages.py RUN PREFIX --check-export TSV [--pairs 20]

RUN is a folder written by `graphrun train graphs/packages*.yaml` on the same
training file: its tokenizer (learned from the training texts), model.yaml and
checkpoint header are reused, so the PyTorch model is trained on graphrun's own
token ids and measured by graphrun's own code. TRAIN_PREFIX (and VALID_PREFIX)
are what `build/bench/encode_pairs RUN TSV PREFIX` writes: PREFIX.left.npy,
PREFIX.right.npy ((N, T) int32, ids cut and padded with 0 to model.yaml's
lengths) and PREFIX.label.npy.

The model: for each side nn.Embedding(V, 32) -> nn.LSTM(32, 64, batch_first)
over pack_padded_sequence (a row's length: 1 + the index of its last non-zero
id, as graphrun's sequence_lengths; at least 1) -> final hidden state ->
nn.Linear(64, 256); cosine similarity (F.cosine_similarity, eps 1e-8). Where
RUN's model.yaml has `bidirectional: true` lstms (merge concat, as
bench/learning_study's *_bilstm configs): nn.LSTM(bidirectional=True), the
forward direction's final state then the backward one's -> nn.Linear(128, 256);
the reverse direction's weights are graphrun's *_reverse parameters.
PyTorch's default initialization, from torch.manual_seed(--seed).
  --loss contrastive (graphs/packages.yaml): mean(y d^2 + (1-y) clamp(1-d, 0)^2),
     d = 1 - cos; each epoch every pair as given plus, for each pair i, one
     negative (left i, right j) with j != i drawn uniformly, all shuffled.
  --loss in_batch (graphs/packages_in_batch.yaml): 0.5 (CE(S/0.05, arange) +
     CE(S^T/0.05, arange)), S the batch's cosine matrix; positive pairs only,
     packed into batches with no left or right text twice (graphrun's greedy
     planner: a clashing pair waits and goes first into the next batch; what
     still clashes at the end of the epoch is left out).
Adam(lr 1e-3, betas (0.9, 0.999), eps 1e-8), batch 32 (the last batch smaller),
--epochs (3). With --valid, after each epoch the validation AUC (each
validation pair plus one negative per pair, drawn once) picks the epoch whose
weights are exported, as graphrun's best.safetensors does (run.checkpoint), and
the decision threshold is chosen on it as graphrun chooses it (best accuracy);
without --valid the last epoch is exported and model.yaml carries no threshold
(graphrun evaluate then reports no accuracy/precision/recall/F1).

Export: RUN is copied to OUT (model.yaml and the tokenizer; not its weights,
metrics, validation.tsv, pictures or eval.json), the
weights are written by hand (numpy) as OUT/torch.safetensors with graphrun's
parameter names (left_embedding.weight, left_lstm.weight_ih, left_lstm.weight_hh,
left_lstm.bias = bias_ih + bias_hh, left_dense.weight, left_dense.bias, right_*)
and the run checkpoint's `structure`, `inputs` and `format` metadata, and
model.yaml's run.checkpoint (and run.threshold) point at it. Then
`graphrun evaluate OUT` measures the test split exactly as for graphrun's runs;
its eval.json gets the seed, the loss and the training time added.

What it does not mirror: the random streams (PyTorch's generator, not
graphrun's mt19937_64: other initial weights, other shuffles and negatives);
graphrun's single LSTM bias is initialised as one uniform, PyTorch's two are
summed; PyTorch's validation negatives are drawn by numpy, not graphrun's
epoch_seed(seed, -1); graphrun's early stopping (patience 2 cannot stop a
3-epoch run before its end anyway).

The seed's synthetic data (graphs/siamese.yaml): RUN is a run of it, TRAIN_PREFIX
and VALID_PREFIX are PREFIX.train and PREFIX.valid of `encode_pairs --split RUN
PREFIX` (the training split and the validation pairs with their drawn negatives,
which the run's seed chose); --no-evaluate, and val_auc in OUT/torch.json is the
figure. --check-valid proves those are the pairs graphrun measured.

--check-export proves the weight mapping: it loads RUN's own checkpoint into
the PyTorch model, compares the cosine of the first --pairs pairs of PREFIX
with `graphrun score RUN --data` on the same lines of TSV (to 1e-5), and
writes the weights back with this script's writer, comparing every tensor with
the original.
"""
import argparse, json, os, re, shutil, subprocess, sys, tempfile, time  # noqa: E401

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as bench/torch_langid.py

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.nn.utils.rnn import pack_padded_sequence  # noqa: E402

EMBED, UNITS, DIM = 32, 64, 256
HERE = os.path.dirname(os.path.abspath(__file__))


# ---- safetensors, by hand (docs/checkpoints.md, engine/io/safetensors.cpp) ----

def read_safetensors(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    dtypes = {"F32": np.float32, "I32": np.int32, "I64": np.int64}
    tensors = {k: np.frombuffer(data[v["data_offsets"][0]:v["data_offsets"][1]], dtypes[v["dtype"]]).reshape(v["shape"]).copy()
               for k, v in header.items()}
    return tensors, meta


def write_safetensors(path, tensors, metadata):
    """F32 tensors back to back in name order; header padded with spaces to a multiple of 8."""
    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name], dtype="<f4")
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
        blobs.append(a.tobytes())
    if metadata:
        header = {"__metadata__": {k: str(v) for k, v in metadata.items()}, **header}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


# ---- the model ----

def lengths_of(ids):
    """1 + the index of the last non-zero id (graphrun's sequence_lengths), at least 1."""
    nz = ids != 0
    last = ids.shape[1] - np.argmax(nz[:, ::-1], axis=1)
    last[~nz.any(axis=1)] = 1
    return last.astype(np.int64)


class Branch(nn.Module):
    def __init__(self, vocab, bidirectional):
        super().__init__()
        self.embedding = nn.Embedding(vocab, EMBED)
        self.lstm = nn.LSTM(EMBED, UNITS, batch_first=True, bidirectional=bidirectional)
        self.dense = nn.Linear(2 * UNITS if bidirectional else UNITS, DIM)

    def forward(self, ids, lengths, packed=None):
        if packed is None:
            packed = self.lstm.bidirectional
        if not packed:
            # A one-way LSTM's output at step length-1 is its state after `length`
            # steps: the padded steps after it feed nothing that is read, so this is
            # the packed computation, without packing. Why not pack: PyTorch 1.13's
            # CPU backward through a PackedSequence is quadratic in the steps (each
            # step's SliceBackward adds into a zero tensor the size of the whole
            # input): 11 s a batch of 32 x 600 here, against 0.2 s unpacked.
            # --check-unpacked compares the two.
            out, _ = self.lstm(self.embedding(ids[:, :int(lengths.max())]))
            return self.dense(out[torch.arange(len(ids)), lengths - 1])
        packed = pack_padded_sequence(self.embedding(ids), lengths, batch_first=True, enforce_sorted=False)
        _, (h, _) = self.lstm(packed)  # (directions, N, UNITS), in input order
        # graphrun's bidirectional lstm (merge: concat): forward's final state, then backward's
        return self.dense(torch.cat(list(h), dim=1))


# graphrun's names of each direction's parameters (the reverse one's with _reverse),
# and PyTorch's (suffix _reverse after the layer index).
DIRECTIONS = (("", ""), ("_reverse", "_reverse"))


class Siamese(nn.Module):
    def __init__(self, left_vocab, right_vocab, bidirectional=False):
        super().__init__()
        self.left = Branch(left_vocab, bidirectional)
        self.right = Branch(right_vocab, bidirectional)
        self.directions = DIRECTIONS if bidirectional else DIRECTIONS[:1]

    def to_graphrun(self):
        out = {}
        for side in ("left", "right"):
            b = getattr(self, side)
            out[f"{side}_embedding.weight"] = b.embedding.weight
            for ours, theirs in self.directions:
                out[f"{side}_lstm.weight_ih{ours}"] = getattr(b.lstm, f"weight_ih_l0{theirs}")
                out[f"{side}_lstm.weight_hh{ours}"] = getattr(b.lstm, f"weight_hh_l0{theirs}")
                out[f"{side}_lstm.bias{ours}"] = getattr(b.lstm, f"bias_ih_l0{theirs}") + getattr(b.lstm, f"bias_hh_l0{theirs}")
            out[f"{side}_dense.weight"] = b.dense.weight
            out[f"{side}_dense.bias"] = b.dense.bias
        return {k: v.detach().cpu().numpy().astype(np.float32) for k, v in out.items()}

    @torch.no_grad()
    def from_graphrun(self, tensors):
        for side in ("left", "right"):
            b = getattr(self, side)
            b.embedding.weight.copy_(torch.from_numpy(tensors[f"{side}_embedding.weight"]))
            for ours, theirs in self.directions:
                getattr(b.lstm, f"weight_ih_l0{theirs}").copy_(torch.from_numpy(tensors[f"{side}_lstm.weight_ih{ours}"]))
                getattr(b.lstm, f"weight_hh_l0{theirs}").copy_(torch.from_numpy(tensors[f"{side}_lstm.weight_hh{ours}"]))
                getattr(b.lstm, f"bias_ih_l0{theirs}").copy_(torch.from_numpy(tensors[f"{side}_lstm.bias{ours}"]))
                getattr(b.lstm, f"bias_hh_l0{theirs}").zero_()
            b.dense.weight.copy_(torch.from_numpy(tensors[f"{side}_dense.weight"]))
            b.dense.bias.copy_(torch.from_numpy(tensors[f"{side}_dense.bias"]))


class Pairs:
    def __init__(self, prefix):
        self.left = np.load(prefix + ".left.npy")
        self.right = np.load(prefix + ".right.npy")
        self.label = np.load(prefix + ".label.npy").astype(np.float32)
        assert self.left.dtype == np.int32 and self.right.dtype == np.int32, prefix
        self.left_len, self.right_len = lengths_of(self.left), lengths_of(self.right)
        self.left_t = torch.from_numpy(self.left.astype(np.int64))
        self.right_t = torch.from_numpy(self.right.astype(np.int64))

    def __len__(self):
        return len(self.label)


def embed_side(branch, ids, lengths, rows, batch=512):
    out = []
    for k in range(0, len(rows), batch):
        r = rows[k:k + batch]
        out.append(branch(ids[r], torch.from_numpy(lengths[r])))
    return torch.cat(out)


@torch.no_grad()
def similarities(model, data, left_rows, right_rows):
    model.eval()
    a = embed_side(model.left, data.left_t, data.left_len, left_rows)
    b = embed_side(model.right, data.right_t, data.right_len, right_rows)
    model.train()
    return F.cosine_similarity(a, b, dim=1, eps=1e-8).numpy()


# ---- batches ----

def contrastive_epoch(n, labels, rng):
    """Every pair as given, then one negative (i, j != i) each, shuffled: graphrun's plan_epoch."""
    left = np.arange(n)
    j = rng.integers(0, n - 1, size=n)
    j[j >= left] += 1
    samples = np.stack([np.concatenate([left, left]), np.concatenate([left, j]),
                        np.concatenate([labels, np.zeros(n, np.float32)])], axis=1)
    return samples[rng.permutation(len(samples))]


def in_batch_epoch(data, keys, batch_size, rng):
    """graphrun's plan_batch_negatives_epoch: similar pairs in shuffled order, packed
    into batches with no left or right text twice; returns (batches, left out)."""
    order = [int(i) for i in rng.permutation(np.flatnonzero(data.label == 1.0))]
    left_key, right_key = keys
    batches, waiting, nxt = [], [], 0
    while True:
        lefts, rights, batch = set(), set(), []

        def try_add(i):
            if left_key[i] in lefts or right_key[i] in rights:
                return False
            lefts.add(left_key[i])
            rights.add(right_key[i])
            batch.append(i)
            return True
        still = []
        for i in waiting:
            if len(batch) == batch_size or not try_add(i):
                still.append(i)
        waiting = still
        while len(batch) < batch_size and nxt < len(order):
            i = order[nxt]
            nxt += 1
            if not try_add(i):
                waiting.append(i)
        if batch:
            batches.append(np.array(batch))
        if len(batch) < batch_size:
            return batches, len(waiting)


def best_accuracy_threshold(score, label):
    """graphrun's best_accuracy_threshold (engine/train/metrics.cpp)."""
    order = np.argsort(-score, kind="stable")[::-1]  # lowest first
    right = float((label == 1).sum())
    n = float(len(score))
    best = (float(score[order[0]]) - 1e-6, right / n)
    k = 0
    while k < len(order):
        end = k
        while True:
            right += -1 if label[order[end]] == 1 else 1
            end += 1
            if not (end < len(order) and score[order[end]] == score[order[k]]):
                break
        cut = 0.5 * (float(score[order[k]]) + float(score[order[end]])) if end < len(order) else float(score[order[k]]) + 1e-6
        if right / n > best[1]:
            best = (cut, right / n)
        k = end
    return best[0]


def roc_auc(score, label):
    """ROC AUC, ties counting half (Mann-Whitney with average ranks)."""
    order = np.argsort(score, kind="stable")
    s = score[order]
    ranks = np.empty(len(s))
    k = 0
    while k < len(s):
        end = k
        while end < len(s) and s[end] == s[k]:
            end += 1
        ranks[k:end] = 0.5 * (k + 1 + end)  # the mean of ranks k+1 .. end
        k = end
    pos = label[order] == 1
    npos, nneg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - npos * (npos + 1) / 2) / (npos * nneg))


# ---- the run folder ----

def read_model_yaml(run):
    with open(os.path.join(run, "model.yaml"), encoding="utf-8") as f:
        return f.read()


def run_entry(text, key):
    m = re.search(r"^run:\s*\n((?:[ \t]+.*\n?)*)", text, re.M)
    if not m:
        return None
    k = re.search(r"^[ \t]+" + key + r":\s*(\S+)", m.group(1), re.M)
    return k.group(1) if k else None


def set_run_entries(text, entries):
    """Rewrites model.yaml's run: section's keys (None removes one)."""
    m = re.search(r"^run:\s*\n((?:[ \t]+.*\n?)*)", text, re.M)
    if not m:
        raise SystemExit("model.yaml has no run: section")
    lines = [l for l in m.group(1).splitlines() if l.strip()]
    indent = re.match(r"[ \t]+", lines[0]).group(0)
    kept = {}
    for l in lines:
        key, _, value = l.strip().partition(":")
        kept[key] = value.strip()
    for key, value in entries.items():
        if value is None:
            kept.pop(key, None)
        else:
            kept[key] = value
    block = "".join(f"{indent}{k}: {v}\n" for k, v in kept.items())
    return text[:m.start(1)] + block + text[m.end(1):]


def bidirectional_of(text):
    """Whether model.yaml's lstms read both ways (both branches alike, as the specs this script mirrors)."""
    flags = re.findall(r"op:\s*lstm\b[^}\n]*", text)
    if not flags:
        raise SystemExit("model.yaml: no lstm node")
    both = ["bidirectional: true" in f for f in flags]
    if len(set(both)) != 1:
        raise SystemExit("model.yaml: one lstm is bidirectional and another is not: not a model this script mirrors")
    if any("merge: sum" in f for f in flags):
        raise SystemExit("model.yaml: merge: sum: this script mirrors merge: concat only")
    return both[0]


def vocab_of(text, node):
    m = re.search(r"name:\s*" + node + r"\b.*?vocab:\s*(\d+)", text)
    if not m:
        raise SystemExit(f"model.yaml: no vocab for {node}")
    return int(m.group(1))


def export(model, run, out, ckpt_name, threshold, extra_meta):
    if os.path.exists(out):
        shutil.rmtree(out)
    # graphrun's weights and what its training and evaluation wrote stay behind: only the model (spec, tokenizer) is copied
    skip = {"checkpoint.safetensors", "best.safetensors", "eval.json", "eval.svg", "training.svg", "metrics.jsonl", "validation.tsv"}
    shutil.copytree(run, out, ignore=lambda d, names: [n for n in names if n in skip or ".tmp." in n])
    text = read_model_yaml(run)
    _, meta = read_safetensors(os.path.join(run, run_entry(text, "checkpoint") or "checkpoint.safetensors"))
    keep = {k: meta[k] for k in ("format", "structure", "inputs", "spec", "task") if k in meta}
    keep.update(extra_meta)
    tensors = model.to_graphrun()
    graphrun_names = set(read_safetensors_header(os.path.join(run, run_entry(text, "checkpoint") or "checkpoint.safetensors")))
    missing = graphrun_names - set(tensors)
    if missing:
        raise SystemExit(f"the run's checkpoint holds parameters this script does not write: {sorted(missing)}")
    write_safetensors(os.path.join(out, ckpt_name), tensors, keep)
    text = set_run_entries(text, {"checkpoint": ckpt_name, "threshold": None if threshold is None else repr(float(threshold))})
    with open(os.path.join(out, "model.yaml"), "w", encoding="utf-8") as f:
        f.write(text)


def read_safetensors_header(path):
    """The parameter names of a graphrun checkpoint (optimizer state left out)."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    return [k for k in header if k != "__metadata__" and ".adam_" not in k and ".sgd_" not in k]


# ---- training ----

def train(args):
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    text = read_model_yaml(args.run)
    model = Siamese(vocab_of(text, "left_embedding"), vocab_of(text, "right_embedding"), bidirectional_of(text))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8)
    data = Pairs(args.prefix)
    n = len(data)
    valid = Pairs(args.valid) if args.valid else None
    if valid is not None:
        vrng = np.random.default_rng(10_000 + args.seed)
        vn = len(valid)
        vl = np.concatenate([np.arange(vn), np.arange(vn)])
        j = vrng.integers(0, vn - 1, size=vn)
        j[j >= np.arange(vn)] += 1
        vr = np.concatenate([np.arange(vn), j])
        vy = np.concatenate([valid.label, np.zeros(vn, np.float32)])
        if not (valid.label == 1).all():  # labelled: as given
            vl, vr, vy = np.arange(vn), np.arange(vn), valid.label
    keys = None
    if args.loss == "in_batch":
        keys = ([row.tobytes() for row in data.left], [row.tobytes() for row in data.right])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {n} training pairs, loss {args.loss}, seed {args.seed}",
          file=sys.stderr, flush=True)
    history, best = [], None
    train_seconds = 0.0
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        total, count, left_out = 0.0, 0, 0
        if args.loss == "contrastive":
            s = contrastive_epoch(n, data.label, rng)
            batches = [s[k:k + args.batch_size] for k in range(0, len(s), args.batch_size)]
        else:
            batches, left_out = in_batch_epoch(data, keys, args.batch_size, rng)
        for b in batches:
            if args.loss == "contrastive":
                li, ri, y = b[:, 0].astype(np.int64), b[:, 1].astype(np.int64), torch.from_numpy(b[:, 2].astype(np.float32))
            else:
                li = ri = b
            a = model.left(data.left_t[li], torch.from_numpy(data.left_len[li]))
            c = model.right(data.right_t[ri], torch.from_numpy(data.right_len[ri]))
            if args.loss == "contrastive":
                d = 1 - F.cosine_similarity(a, c, dim=1, eps=1e-8)
                loss = (y * d.pow(2) + (1 - y) * torch.clamp(1 - d, min=0).pow(2)).mean()
            else:
                logits = (F.normalize(a, dim=1, eps=1e-8) @ F.normalize(c, dim=1, eps=1e-8).T) / args.temperature
                target = torch.arange(len(b))
                loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(b)
            count += len(b)
        secs = time.perf_counter() - t0
        train_seconds += secs
        row = {"epoch": epoch, "train_loss": total / count, "train_seconds": secs, "steps": len(batches)}
        if args.loss == "in_batch":
            row["left_out"] = left_out
        if valid is not None:
            sim = similarities(model, valid, vl, vr)
            row["val_auc"] = roc_auc(sim, vy)
            if best is None or row["val_auc"] > best["val_auc"]:
                best = {"epoch": epoch, "val_auc": row["val_auc"], "state": {k: v.clone() for k, v in model.state_dict().items()},
                        "threshold": best_accuracy_threshold(sim, vy)}
        history.append(row)
        print("seed %d epoch %d: train loss %.4f%s  %.1f s" % (args.seed, epoch, row["train_loss"],
              "  val_auc %.4f" % row["val_auc"] if "val_auc" in row else "", secs), file=sys.stderr, flush=True)
    threshold = None
    if best is not None and args.select == "best":
        model.load_state_dict(best["state"])
        threshold = best["threshold"]
        chosen = best["epoch"]
    else:
        chosen = args.epochs
    return model, history, chosen, threshold, train_seconds


def evaluate(args, out):
    cmd = [args.graphrun, "evaluate", out]
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sys.stderr.write(r.stdout + r.stderr)
    if r.returncode != 0:
        raise SystemExit(f"graphrun evaluate failed (exit {r.returncode})")
    with open(os.path.join(out, "eval.json")) as f:
        return json.load(f)


def check_export(args):
    """RUN's own weights in the PyTorch model: the same cosines as graphrun score, and the same tensors written back."""
    text = read_model_yaml(args.run)
    ckpt = os.path.join(args.run, run_entry(text, "checkpoint") or "checkpoint.safetensors")
    tensors, meta = read_safetensors(ckpt)
    params = {k: tensors[k] for k in read_safetensors_header(ckpt)}
    model = Siamese(vocab_of(text, "left_embedding"), vocab_of(text, "right_embedding"), bidirectional_of(text))
    model.from_graphrun(params)
    data = Pairs(args.prefix)
    k = min(args.pairs, len(data))
    rows = np.arange(k)
    ours = similarities(model, data, rows, rows)
    with open(args.check_export, encoding="utf-8") as f, tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False, encoding="utf-8") as t:
        lines = [l for l in f if l.strip()][:k]  # read_text_pairs skips empty lines
        t.writelines(lines)

    def score(run):
        r = subprocess.run([args.graphrun, "score", run, "--data", t.name], stdout=subprocess.PIPE, text=True, check=True)
        return r.stdout, np.array([float(l.split("\t")[0]) for l in r.stdout.splitlines() if l.strip()])
    graphrun_out, theirs = score(args.run)
    diff = np.abs(ours - theirs)
    print(f"{ckpt}: {k} pairs, PyTorch cosine against graphrun score: max |difference| {diff.max():.2e}")
    for a, b in list(zip(ours, theirs))[:5]:
        print(f"  torch {a:+.6f}  graphrun {b:+.6f}")
    back = model.to_graphrun()
    with tempfile.TemporaryDirectory() as d:
        write_safetensors(os.path.join(d, "x.safetensors"), back, {k: meta[k] for k in ("format", "structure", "inputs") if k in meta})
        again, _ = read_safetensors(os.path.join(d, "x.safetensors"))
    worst = max(float(np.abs(again[n] - params[n]).max()) for n in params)
    same_names = sorted(again) == sorted(params)
    print(f"written back: the same {len(params)} parameter names: {same_names}; max |difference| {worst:.2e}")
    # The whole export (folder, safetensors, model.yaml) of these weights: graphrun scores it as the run itself.
    with tempfile.TemporaryDirectory() as d:
        exported = os.path.join(d, "run")
        export(model, args.run, exported, "torch.safetensors", run_entry(text, "threshold"), {"trained_by": "check-export"})
        exported_out, _ = score(exported)
    os.unlink(t.name)
    same_scores = exported_out == graphrun_out
    print(f"exported as a run folder: graphrun score gives the same output as on {args.run}: {same_scores}")
    ok = diff.max() <= 1e-5 and same_names and worst <= 1e-6 and same_scores
    print("export check: " + ("ok" if ok else "FAILED"))
    return 0 if ok else 1


def check_unpacked(args):
    """A one-way branch, on the first batches of PREFIX's right texts (the long ones):
    without packing (what training uses) against pack_padded_sequence, outputs and
    every gradient to 1e-5 relative to the largest."""
    torch.manual_seed(args.seed)
    data = Pairs(args.prefix)
    branch = Branch(int(data.right.max()) + 1, bidirectional=False)
    worst = 0.0
    for k in range(0, min(len(data), 3 * args.batch_size), args.batch_size):
        rows = np.arange(k, min(k + args.batch_size, len(data)))
        ids, lengths = data.right_t[rows], torch.from_numpy(data.right_len[rows])
        results = []
        for packed in (False, True):
            branch.zero_grad()
            out = branch(ids, lengths, packed=packed)
            (out * torch.linspace(-1, 1, out.shape[1])).sum().backward()
            results.append([out.detach().clone()] + [q.grad.clone() for q in branch.parameters()])
        for a, b in zip(*results):
            worst = max(worst, float((a - b).abs().max() / b.abs().max().clamp(min=1e-30)))
        print(f"rows {rows[0]}..{rows[-1]} (lengths {int(lengths.min())}..{int(lengths.max())}): "
              f"largest relative difference so far {worst:.2e}", flush=True)
    ok = worst <= 1e-5
    print("unpacked check: " + ("ok" if ok else "FAILED"))
    return 0 if ok else 1


def check_valid(args):
    """RUN's last weights (checkpoint.safetensors) in the PyTorch model, on --valid's pairs: the
    val_auc of RUN's last metrics.jsonl line (to 1e-5), so the pairs are the ones graphrun measured."""
    text = read_model_yaml(args.run)
    ckpt = os.path.join(args.run, "checkpoint.safetensors")
    tensors, _ = read_safetensors(ckpt)
    model = Siamese(vocab_of(text, "left_embedding"), vocab_of(text, "right_embedding"), bidirectional_of(text))
    model.from_graphrun({k: tensors[k] for k in read_safetensors_header(ckpt)})
    valid = Pairs(args.valid)
    rows = np.arange(len(valid))
    ours = roc_auc(similarities(model, valid, rows, rows), valid.label)
    with open(os.path.join(args.run, "metrics.jsonl")) as f:
        theirs = json.loads(f.read().splitlines()[-1])["val_auc"]
    ok = abs(ours - theirs) <= 1e-5
    print(f"{ckpt} on {args.valid} ({len(valid)} pairs): PyTorch's AUC {ours:.6f}, graphrun's last val_auc {theirs:.6f}: "
          + ("ok" if ok else "FAILED"))
    return 0 if ok else 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="a graphrun run folder trained on the same training file")
    p.add_argument("prefix", help="encode_pairs OUT_PREFIX of the training split")
    p.add_argument("--out", help="the exported run folder (replaced if it exists)")
    p.add_argument("--loss", choices=("contrastive", "in_batch"), default="contrastive")
    p.add_argument("--valid", metavar="PREFIX", help="encode_pairs OUT_PREFIX of the validation split: picks the best epoch and the threshold")
    p.add_argument("--select", choices=("best", "last"), default="best", help="with --valid: the epoch exported (default best, as graphrun)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--temperature", type=float, default=0.05)
    p.add_argument("--graphrun", default=os.path.join(HERE, "..", "build", "graphrun"))
    p.add_argument("--no-evaluate", action="store_true", help="export only")
    p.add_argument("--json", metavar="FILE", help="also write the figures here")
    p.add_argument("--check-export", metavar="TSV", help="check the weight mapping against graphrun score (PREFIX encodes TSV)")
    p.add_argument("--pairs", type=int, default=20, help="pairs --check-export scores")
    p.add_argument("--check-unpacked", action="store_true", help="check that a one-way branch without packing gives the packed outputs and gradients on PREFIX's first batches")
    p.add_argument("--check-valid", action="store_true", help="check that --valid holds the pairs RUN's val_auc measured (encode_pairs --split)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.check_export:
        return check_export(args)
    if args.check_valid:
        return check_valid(args)
    if args.check_unpacked:
        return check_unpacked(args)
    if not args.out:
        p.error("--out is required for training")
    model, history, chosen, threshold, train_seconds = train(args)
    meta = {"trained_by": "bench/torch_packages.py", "torch": torch.__version__, "seed": args.seed, "loss": args.loss,
            "epoch": chosen, "epochs": args.epochs}
    export(model, args.run, args.out, "torch.safetensors", threshold, meta)
    result = {"seed": args.seed, "loss": args.loss, "epochs": args.epochs, "exported_epoch": chosen, "train_seconds": train_seconds,
              "threads": torch.get_num_threads(), "torch": torch.__version__, "history": history}
    if not args.no_evaluate:
        figures = evaluate(args, args.out)
        result.update({k: figures.get(k) for k in ("auc", "recall_at_1", "recall_at_5", "recall_at_10", "mrr", "accuracy")})
        figures.update({"seed": args.seed, "loss": args.loss, "train_seconds": train_seconds, "trained_by": "bench/torch_packages.py"})
        with open(os.path.join(args.out, "eval.json"), "w") as f:
            json.dump(figures, f, indent=2)
        print("seed %d %s: test AUC %.4f  recall@1 %.4f  recall@10 %.4f  MRR %.4f  (epoch %d of %d, %.0f s training)" %
              (args.seed, args.loss, figures["auc"], figures["recall_at_1"], figures["recall_at_10"], figures["mrr"],
               chosen, args.epochs, train_seconds), flush=True)
    with open(os.path.join(args.out, "torch.json"), "w") as f:
        json.dump(result, f, indent=2)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
