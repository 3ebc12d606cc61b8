#!/usr/bin/python3
"""PyTorch reference for the graphrun language-identification task (data/langid).

Byte-level LSTM classifier: UTF-8 bytes -> Embedding(257, 32) -> LSTM(32, 64) over
packed sequences -> final hidden state -> Linear(64, 10) -> cross-entropy.
Trains on data/langid/train.tsv, prints validation accuracy per epoch (stderr) and
test accuracy / macro F1 per seed plus mean and sample standard deviation (stdout).

Example: /usr/bin/python3 bench/torch_langid.py --seeds 0,1,2 --json /tmp/langid.json
"""
import argparse, json, math, os, statistics, sys, time  # noqa: E401

# As in bench/torch_siamese.py: libgomp's spinning workers fight OpenBLAS's threads
# on small machines. Must be set before torch loads libgomp.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.nn.utils.rnn import pack_padded_sequence  # noqa: E402

LANGS = ["de", "es", "fr", "it", "ja", "nl", "pl", "pt", "ru", "sv"]  # class index order
VOCAB, EMBED, UNITS = 257, 32, 64  # byte b -> id b + 1, 0 = padding
HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data", "langid")


def load(path, length):
    """Returns ids (N, length) int64, lengths (N,) int64, labels (N,) int64."""
    index = {c: i for i, c in enumerate(LANGS)}
    texts, labels = [], []
    with open(path, encoding="utf-8", newline="\n") as f:
        for line in f:
            text, lang = line.rstrip("\n").split("\t")
            texts.append(text)
            labels.append(index[lang])
    ids = torch.zeros(len(texts), length, dtype=torch.long)
    lengths = torch.empty(len(texts), dtype=torch.long)
    for i, t in enumerate(texts):
        b = t.encode("utf-8")[:length]  # cut to the first `length` bytes
        if b:
            ids[i, :len(b)] = torch.tensor(list(b), dtype=torch.long) + 1
        lengths[i] = max(1, len(b))
    return ids, lengths, torch.tensor(labels, dtype=torch.long)


class LangId(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, EMBED)
        self.lstm = nn.LSTM(EMBED, UNITS, batch_first=True)
        self.dense = nn.Linear(UNITS, len(LANGS))

    def forward(self, ids, lengths):
        packed = pack_padded_sequence(self.embedding(ids), lengths, batch_first=True,
                                      enforce_sorted=False)
        _, (h_n, _) = self.lstm(packed)  # h_n: (layers=1, N, UNITS), in input order
        return self.dense(h_n[0])


@torch.no_grad()
def predict(model, ids, lengths, batch=1024):
    model.eval()
    out = [model(ids[i:i + batch], lengths[i:i + batch]).argmax(1)
           for i in range(0, len(ids), batch)]
    model.train()
    return torch.cat(out)


def scores(pred, gold):
    acc = (pred == gold).double().mean().item()
    f1s = []
    for c in range(len(LANGS)):
        tp = ((pred == c) & (gold == c)).sum().item()
        fp = ((pred == c) & (gold != c)).sum().item()
        fn = ((pred != c) & (gold == c)).sum().item()
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return acc, sum(f1s) / len(f1s)


def run(seed, args, train, valid, test):
    torch.manual_seed(seed)
    model = LangId()  # default PyTorch initialization
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8)
    ids, lengths, labels = train
    n = len(ids)
    epochs = []
    t_run = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        perm = torch.randperm(n)  # reshuffled every epoch (global generator, seeded above)
        total = 0.0
        for i in range(0, n, args.batch_size):
            idx = perm[i:i + args.batch_size]
            loss = F.cross_entropy(model(ids[idx], lengths[idx]), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        train_secs = time.perf_counter() - t0
        vacc, vf1 = scores(predict(model, *valid[:2]), valid[2])
        secs = time.perf_counter() - t0
        epochs.append({"epoch": epoch, "train_loss": total / n, "valid_acc": vacc,
                       "valid_macro_f1": vf1, "train_seconds": train_secs, "seconds": secs})
        print("seed %d epoch %d: train loss %.4f  valid acc %.4f  %.1f s" %
              (seed, epoch, total / n, vacc, secs), file=sys.stderr, flush=True)
    tacc, tf1 = scores(predict(model, *test[:2]), test[2])
    return {"seed": seed, "test_acc": tacc, "test_macro_f1": tf1, "epochs": epochs,
            "seconds": time.perf_counter() - t_run}


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, help="run this one seed (overrides --seeds)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--lr", type=float, default=0.002)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--length", type=int, default=64, help="max bytes per text (default 64)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--train", default=os.path.join(DATA, "train.tsv"))
    p.add_argument("--valid", default=os.path.join(DATA, "validation.tsv"))
    p.add_argument("--test", default=os.path.join(DATA, "test.tsv"))
    p.add_argument("--json", metavar="FILE", help="write the figures to FILE")
    args = p.parse_args()
    seeds = [args.seed] if args.seed is not None else [int(s) for s in args.seeds.split(",") if s]

    torch.set_num_threads(args.threads)
    train, valid, test = (load(path, args.length) for path in (args.train, args.valid, args.test))
    print("torch %s, %d threads; train %d, validation %d, test %d rows; length %d bytes" %
          (torch.__version__, torch.get_num_threads(), len(train[0]), len(valid[0]),
           len(test[0]), args.length), file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    runs = []
    for seed in seeds:
        r = run(seed, args, train, valid, test)
        runs.append(r)
        print("seed %d: test accuracy %.4f  test macro F1 %.4f  (final valid acc %.4f, %.1f s)" %
              (seed, r["test_acc"], r["test_macro_f1"], r["epochs"][-1]["valid_acc"],
               r["seconds"]), flush=True)

    def mean_sd(key):
        v = [r[key] for r in runs]
        return statistics.mean(v), (statistics.stdev(v) if len(v) > 1 else math.nan)

    acc_m, acc_sd = mean_sd("test_acc")
    f1_m, f1_sd = mean_sd("test_macro_f1")
    total = time.perf_counter() - t0
    print("over %d seed(s) %s: test accuracy mean %.4f sd %.4f; test macro F1 mean %.4f sd %.4f; "
          "%.1f s" % (len(runs), ",".join(map(str, seeds)), acc_m, acc_sd, f1_m, f1_sd, total))
    if args.json:
        out = {"task": "langid", "torch": torch.__version__, "threads": torch.get_num_threads(),
               "config": {"epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size,
                          "length": args.length, "embed": EMBED, "units": UNITS,
                          "classes": LANGS, "seeds": seeds},
               "data": {"train": len(train[0]), "validation": len(valid[0]), "test": len(test[0])},
               "runs": runs,
               "summary": {"test_acc_mean": acc_m, "test_acc_sd": None if math.isnan(acc_sd) else acc_sd,
                           "test_macro_f1_mean": f1_m,
                           "test_macro_f1_sd": None if math.isnan(f1_sd) else f1_sd,
                           "seconds": total}}
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
