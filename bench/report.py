#!/usr/bin/python3
"""Prints bench/run's table from its JSON lines: per case (mode, threads), the
median over rounds of each program's samples/s median, the ratios, peak memory."""
import json, statistics, sys  # noqa: E401
from collections import defaultdict

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
speed, memory, threads_seen, lstm_share = defaultdict(list), defaultdict(list), defaultdict(list), defaultdict(list)
unsupported = {}
roof_ms, roof_gflops, roof_kind, roof_mflop = defaultdict(list), defaultdict(list), {}, {}
mflop_per_pair = defaultdict(list)
text = defaultdict(list)  # (data, threads, who) -> rows of the real-text lines
for r in rows:
    if "data" in r:
        who = r["framework"] + ("-buckets" if "length_buckets" in r.get("sets", "") else "")
        text[(r["data"], r["threads"], who)].append(r)
        continue
    if r["framework"] == "roofline":
        key = (r["threads"], r["part"])
        roof_ms[key].append(r["ms_median"])
        roof_gflops[key].append(r["gflops"])
        roof_kind[key], roof_mflop[key] = r["kind"], r["mflop"]
        continue
    if "mflop_per_pair" in r:
        mflop_per_pair[r["mode"]].append(r["mflop_per_pair"])
    if "unsupported" in r:  # a case this CPU cannot run (bf16 LSTM without AVX-512)
        unsupported[r["framework"]] = r["unsupported"]
        continue
    who = r["framework"] + ("/" + r["arrangement"] if "arrangement" in r else "")
    key = (r["mode"], r["threads"], who)
    speed[key].append(r["samples_per_s_median"])
    memory[key].append(r["peak_rss_mb"])
    if "lstm_share" in r:
        lstm_share[key].append(r["lstm_share"])
    if "process_threads" in r:
        threads_seen[key].append(r["process_threads"])


def med(d, key):
    return statistics.median(d[key]) if d.get(key) else None


print(f"{'case':<16}{'graphrun':>10}{'pytorch':>10}{'floor':>10} {'(best of)':<14}{'g/pytorch':>10}{'g/floor':>9}"
      f"{'peak MB g / pt / floor':>26}{'g threads':>11}")
for mode in ("train", "infer"):
    for threads in (1, 2):
        g = med(speed, (mode, threads, "graphrun"))
        pt = med(speed, (mode, threads, "pytorch"))
        floors = {a: med(speed, (mode, threads, "onednn-floor/" + a)) for a in ("single", "split")}
        best = max((v, a) for a, v in floors.items() if v is not None)
        mem = [med(memory, (mode, threads, w)) for w in ("graphrun", "pytorch", "onednn-floor/" + best[1])]
        seen = max(threads_seen.get((mode, threads, "graphrun"), [0]))
        print(f"{mode + f', {threads} thread' + ('s' if threads > 1 else ''):<16}{g:>10.0f}{pt:>10.0f}{best[0]:>10.0f} {'(' + best[1] + ')':<14}"
              f"{g / pt:>9.1f}x{g / best[0]:>8.2f}x{' / '.join(f'{m:.0f}' for m in mem):>26}{seen:>11}")
t1, t2 = med(speed, ("train", 1, "graphrun")), med(speed, ("train", 2, "graphrun"))
print(f"graphrun training, 2 threads / 1 thread: {t2 / t1:.2f}x")


def per_round(ratios):
    """Median [min-max] of ratios taken within each round: on a shared machine a
    neighbour's load moves both programs of a round alike."""
    return f"{statistics.median(ratios):.2f}x [{min(ratios):.2f}-{max(ratios):.2f}]" if ratios else "n/a"


def floor_per_round(mode, threads):
    """The floor's better arrangement in each round."""
    arrangements = [f for f in (speed.get((mode, threads, "onednn-floor/" + a), []) for a in ("single", "split")) if f]
    return [max(v) for v in zip(*arrangements)]


cells = []
for mode in ("train", "infer"):
    for threads in (1, 2):
        g = speed.get((mode, threads, "graphrun"), [])
        cells.append(f"{mode} {threads}: {per_round([a / b for a, b in zip(g, floor_per_round(mode, threads))])}")
print("graphrun / floor per round, median [range]: " + ", ".join(cells))
t1s, t2s = speed.get(("train", 1, "graphrun"), []), speed.get(("train", 2, "graphrun"), [])
fl1, fl2 = floor_per_round("train", 1), floor_per_round("train", 2)
print(f"training 2 threads / 1 thread per round, median [range]: graphrun {per_round([b / a for a, b in zip(t1s, t2s)])}, "
      f"floor {per_round([b / a for a, b in zip(fl1, fl2)])}")
for mode in ("train", "infer"):
    for threads in (1, 2):
        f32, bf16 = med(speed, (mode, threads, "graphrun")), med(speed, (mode, threads, "graphrun-bf16"))
        floors = [v for v in (med(speed, (mode, threads, "onednn-floor-bf16/" + a)) for a in ("single", "split")) if v]
        floor = max(floors) if floors else float("nan")
        if bf16:
            print(f"graphrun {mode}, {threads} thread{'s' if threads > 1 else ''}, lstm in bf16: {bf16:.0f} samples/s, "
                  f"{bf16 / f32:.2f}x float32, {bf16 / med(speed, (mode, threads, 'pytorch')):.1f}x PyTorch, {bf16 / floor:.2f}x the bf16 floor ({floor:.0f})")
for mode in ("train", "infer"):
    for threads in (1, 2):
        ours, dnnl = med(speed, (mode, threads, "graphrun")), med(speed, (mode, threads, "graphrun-impl-dnnl"))
        floors = [v for v in (med(speed, (mode, threads, "onednn-floor/" + a)) for a in ("single", "split")) if v]
        if ours and dnnl and floors:
            print(f"graphrun {mode}, {threads} thread{'s' if threads > 1 else ''}, lstm impl dnnl (oneDNN's primitive): {dnnl:.0f} samples/s; "
                  f"graphrun's own lstm (the default) {ours / dnnl:.2f}x it; impl dnnl {dnnl / max(floors):.2f}x the floor ({max(floors):.0f})")
for framework, why in sorted(unsupported.items()):
    print(f"{framework}: not run: {why}")
rest = 1 - med(lstm_share, ("train", 1, "graphrun"))
print(f"graphrun training, 1 thread: everything but the LSTM nodes (embedding, dense, cosine, loss, Adam, scheduling) is {100 * rest:.1f}% of the step")

# The roofline (bench_roofline): the float32 peak, each case's GFLOP/s on the
# model's FLOPs (graphrun's count: Op::forward_flops and backward_flops), and
# the LSTM's GEMMs alone on the training shapes.
def floor_bound(mode, threads, bound):
    """What the bound allows against the floor: the most graphrun / floor could be."""
    floors = [v for v in (med(speed, (mode, threads, "onednn-floor/" + a)) for a in ("single", "split")) if v]
    return f"; the floor {max(floors):.0f}, so graphrun / floor at most {bound / max(floors):.2f}x" if floors else ""


if roof_ms:
    print()
    work = {m: statistics.median(v) for m, v in mflop_per_pair.items()}
    print(f"roofline: the model's work per pair (graphrun's count): training {work.get('train', float('nan')):.1f} MFLOP, "
          f"inference {work.get('infer', float('nan')):.1f} MFLOP")
    peak = {t: statistics.median(roof_gflops[(t, p)]) for (t, p), k in roof_kind.items() if k == "peak"}
    print(f"{'case':<16}{'peak GFLOP/s':>14}{'graphrun':>10}{'share':>8}{'pytorch':>10}{'share':>8}{'floor':>10}{'share':>8}")
    for mode in ("train", "infer"):
        for threads in (1, 2):
            if threads not in peak or mode not in work:
                continue
            cells = []
            for who in ("graphrun", "pytorch"):
                v = med(speed, (mode, threads, who))
                cells.append(v * work[mode] / 1e3 if v else float("nan"))
            floors = [v for v in (med(speed, (mode, threads, "onednn-floor/" + a)) for a in ("single", "split")) if v]
            cells.append(max(floors) * work[mode] / 1e3 if floors else float("nan"))
            print(f"{mode + f', {threads} thread' + ('s' if threads > 1 else ''):<16}{peak[threads]:>14.1f}"
                  + "".join(f"{c:>10.1f}{100 * c / peak[threads]:>7.0f}%" for c in cells))
    for threads in sorted(peak):
        parts = [(p, statistics.median(roof_ms[(t, p)]), roof_mflop[(t, p)], roof_kind[(t, p)]) for (t, p) in roof_ms if t == threads and roof_kind[(t, p)] != "peak"]
        if not any(k == "large" for _, _, _, k in parts):
            continue
        large = sum(ms for _, ms, _, k in parts if k == "large")
        step = sum(ms for _, ms, _, k in parts if k == "per_step")
        mf_large = sum(mf for _, _, mf, k in parts if k == "large")
        mf_step = sum(mf for _, _, mf, k in parts if k == "per_step")
        bound = 32 / ((large + step) / 1e3)
        g = med(speed, ("train", threads, "graphrun"))
        print(f"LSTM training step (batch 32), its GEMMs alone, {threads} thread{'s' if threads > 1 else ''}: large GEMMs over all steps "
              f"{mf_large:.0f} MFLOP in {large:.1f} ms ({mf_large / large:.0f} GFLOP/s), per-step GEMMs {mf_step:.0f} MFLOP in {step:.1f} ms "
              f"({mf_step / step:.0f} GFLOP/s); with free gate arithmetic at most {bound:.0f} samples/s"
              + (f" (graphrun {g:.0f}, {g / bound:.2f}x of it)" if g else "") + floor_bound("train", threads, bound))
        infer_ms = [ms for _, ms, _, k in parts if k.startswith("infer_")]
        if infer_ms:
            bound = 256 / (sum(infer_ms) / 1e3)
            g = med(speed, ("infer", threads, "graphrun"))
            print(f"LSTM inference (batch 256), its GEMMs alone, {threads} thread{'s' if threads > 1 else ''}: "
                  f"{sum(mf for _, _, mf, k in parts if k.startswith('infer_')):.0f} MFLOP in {sum(infer_ms):.1f} ms; with free gate arithmetic "
                  f"at most {bound:.0f} samples/s" + (f" (graphrun {g:.0f}, {g / bound:.2f}x of it)" if g else "") + floor_bound("infer", threads, bound))

# Real text (bench_siamese --data): the seed's model on byte tokens of real
# texts, padded to 52 and 600 or cut per batch (train.length_buckets); the
# bound is what time following the real ids would give: the same model's
# speed where every id is real (the "train" case above: random ids, full
# length, same round and threads) times padded ids over real ids. (It was the
# padded line's speed times that ratio while padding cost as much as real
# ids; graphrun's own LSTM now trains on each row's real steps alone.)
if text:
    print()
    print("real text, training (batch 32; samples/s, median over rounds). PyTorch on the same batches: packed sequences on the "
          "padded line's, last-step (cut to the batch's longest row) on the bucketed line's:")
    print(f"{'data':<10}{'threads':>8}{'padded':>9}{'buckets':>9}{'bound':>8}{'of bound':>10}{'real ids':>10}"
          f"{'pytorch packed':>16}{'last-step':>11}{'pad/packed':>12}{'buck/last':>11}{'peak MB pad/buck':>18}"
          f"{'of bound per round':>26}")
    for data in sorted({d for d, _, _ in text}):
        for threads in (1, 2):
            def figure(who, field="samples_per_s_median"):
                rs = text.get((data, threads, who))
                return statistics.median(r[field] for r in rs) if rs else float("nan")
            padded, buckets = figure("graphrun"), figure("graphrun-buckets")
            fed, real = figure("graphrun", "fed_ids"), figure("graphrun", "real_ids")
            full = med(speed, ("train", threads, "graphrun"))
            bound = (full or float("nan")) * fed / real
            packed, last = figure("pytorch-packed"), figure("pytorch-last-step")
            print(f"{data:<10}{threads:>8}{padded:>9.0f}{buckets:>9.0f}{bound:>8.0f}{buckets / bound:>9.2f}x{100 * real / fed:>9.0f}%"
                  f"{packed:>16.1f}{last:>11.0f}{padded / packed:>11.1f}x{buckets / last:>10.1f}x"
                  f"{figure('graphrun', 'peak_rss_mb'):>9.0f} / {figure('graphrun-buckets', 'peak_rss_mb'):.0f}"
                  f"{per_round([b['samples_per_s_median'] / (f * p['fed_ids'] / p['real_ids']) for p, b, f in zip(text.get((data, threads, 'graphrun'), []), text.get((data, threads, 'graphrun-buckets'), []), speed.get(('train', threads, 'graphrun'), []))]):>26}")
