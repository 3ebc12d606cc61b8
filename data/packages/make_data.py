#!/usr/bin/python3
"""Build the graphrun "packages" text-pair data set from Debian's package descriptions.

Each row pairs a Debian package's one-line summary with its long description
flattened to one line.  Steps:

1. `apt-get update` into a private lists directory with English translations
   switched on (`-o Acquire::Languages=en`), so the machine's own apt lists and
   settings are left alone (its settings drop Translation files at the next
   plain `apt-get update`).
2. `apt-get indextargets` (same options) names the downloaded files; we take the
   Packages file of component `main`, architecture amd64 (which, per the
   Release file's `No-Support-for-Architecture-all: Packages`, also lists the
   arch-all packages) and the Translation-en file of `main`, for the machine's
   suite (VERSION_CODENAME in /etc/os-release) only.  They are decompressed
   with `apt-helper cat-file` (or Python's gzip/lzma/bz2), and their sha256 is
   checked against the InRelease file.
3. Packages gives Package, Source, Description-md5 and the summary line;
   Translation-en gives, per (Package, Description-md5), the long description.
4. Flatten, drop empty long descriptions, deduplicate, split by source package
   (sha256 of the source name: 80/10/10), write xz-compressed TSV files,
   check them, and write MANIFEST.md.

Standard library only.  Run as root (apt-get update needs it):

    /usr/bin/python3 data/packages/make_data.py

Options: --work DIR (private apt state, default /tmp/graphrun-packages-apt),
--no-update (reuse the lists already in --work), --out DIR (default: this folder).
"""
import argparse
import bz2
import collections
import datetime
import gzip
import hashlib
import lzma
import os
import re
import shutil
import subprocess
import sys

SPLITS = ["train", "validation", "test"]
MAX_TOTAL_BYTES = 8 * 1000 * 1000
REGEN = "/usr/bin/python3 data/packages/make_data.py"
COMPONENT = "main"
ARCH = "amd64"
LANG = "en"
PARA = " "  # what a " ." paragraph separator becomes (before whitespace is collapsed)
WS_RE = re.compile(r"\s+")
CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f]")
SOURCE_VERSION_RE = re.compile(r"\s*\(.*\)\s*$")


def sha(*parts):
    return hashlib.sha256("\t".join(parts).encode("utf-8")).hexdigest()


def split_of(source):
    """0-7 train, 8 validation, 9 test, by sha256 of the source package name."""
    b = int(sha("split", source), 16) % 10
    return "train" if b < 8 else ("validation" if b == 8 else "test")


def run(cmd):
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE).stdout.decode("utf-8")


def suite_of_machine():
    with open("/etc/os-release", encoding="utf-8") as f:
        for line in f:
            if line.startswith("VERSION_CODENAME="):
                return line.split("=", 1)[1].strip().strip('"')
    raise SystemExit("no VERSION_CODENAME in /etc/os-release")


def parse_deb822(text):
    """Yield dicts of field -> value (continuation lines joined with '\\n', leading space kept)."""
    for block in re.split(r"\n\s*\n", text):
        fields = {}
        key = None
        for line in block.split("\n"):
            if not line:
                continue
            if line[0] in " \t":
                if key is None:
                    raise ValueError("continuation line before a field: %r" % line[:80])
                fields[key] += "\n" + line
            else:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields:
            yield fields


def read_index(path):
    """Decompressed bytes of an apt lists file (.lz4/.zst via apt-helper; python for the rest)."""
    helper = shutil.which("apt-helper") or "/usr/lib/apt/apt-helper"
    if os.path.exists(helper):
        return subprocess.run([helper, "cat-file", path], check=True, stdout=subprocess.PIPE).stdout
    openers = {".gz": gzip.open, ".xz": lzma.open, ".lzma": lzma.open, ".bz2": bz2.open}
    ext = os.path.splitext(path)[1]
    if ext in openers:
        with openers[ext](path, "rb") as f:
            return f.read()
    if ext in (".lz4", ".zst"):
        raise SystemExit("%s needs apt-helper to decompress" % path)
    with open(path, "rb") as f:
        return f.read()


def release_hashes(release_text):
    """{(algo, path): (hash, size)} from a (In)Release file's MD5Sum/SHA256 sections."""
    out = {}
    algo = None
    for line in release_text.split("\n"):
        if line.startswith("-----BEGIN PGP SIGNATURE"):
            break
        if line and line[0] != " ":
            algo = line.split(":", 1)[0] if line.rstrip().endswith(":") else None
            continue
        if algo and line.startswith(" "):
            h, size, p = line.split()
            out[(algo, p)] = (h, int(size))
    return out


def release_field(release_text, name):
    for line in release_text.split("\n"):
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    return ""


def flatten(text):
    return WS_RE.sub(" ", text).strip()


def long_description(desc_en):
    """Description-en value -> (summary, flattened long description, md5 of the raw description)."""
    lines = desc_en.split("\n")
    summary = lines[0]
    parts = []
    for line in lines[1:]:
        body = line[1:]  # drop the one leading space of a continuation line
        parts.append(PARA if body.strip() == "." else body)
    # Debian's Description-md5 is the md5 of the description as in the control file plus "\n"
    md5 = hashlib.md5((desc_en + "\n").encode("utf-8")).hexdigest()
    return summary, flatten(" ".join(parts)), md5


def percentile(sorted_vals, q):
    """Nearest-rank percentile."""
    if not sorted_vals:
        return 0
    k = max(1, -(-q * len(sorted_vals) // 100))  # ceil(q/100 * n)
    return sorted_vals[int(k) - 1]


def length_stats(values, threshold):
    lens = sorted(len(v.encode("utf-8")) for v in values)
    longer = sum(1 for n in lens if n > threshold)
    return {
        "median": percentile(lens, 50), "p90": percentile(lens, 90), "p99": percentile(lens, 99),
        "max": lens[-1] if lens else 0, "threshold": threshold,
        "share_longer": longer / len(lens) if lens else 0.0,
    }


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="/tmp/graphrun-packages-apt")
    ap.add_argument("--no-update", action="store_true")
    ap.add_argument("--out", default=here)
    args = ap.parse_args()

    suite = suite_of_machine()
    lists = os.path.join(args.work, "lists")
    cache = os.path.join(args.work, "cache")
    os.makedirs(os.path.join(lists, "partial"), exist_ok=True)
    os.makedirs(os.path.join(cache, "archives", "partial"), exist_ok=True)
    apt_opts = ["-o", "Dir::State::Lists=" + lists, "-o", "Dir::Cache=" + cache,
                "-o", "Acquire::Languages=" + LANG]
    if not args.no_update:
        run(["apt-get", "update", "-q"] + apt_opts)

    # --- which files: ask apt --------------------------------------------------------
    targets = list(parse_deb822(run(["apt-get", "indextargets"] + apt_opts)))
    def pick(pred, what):
        found = [t for t in targets if t.get("Codename", t.get("Release")) == suite
                 and t.get("Release") == suite and t.get("Component") == COMPONENT and pred(t)]
        found = [t for t in found if os.path.exists(t["Filename"])]
        if len(found) != 1:
            raise SystemExit("expected one %s target for %s/%s, found %d (apt-get update failed?)"
                             % (what, suite, COMPONENT, len(found)))
        return found[0]
    t_pkg = pick(lambda t: t.get("Created-By") == "Packages" and t.get("Architecture") == ARCH, "Packages")
    t_tr = pick(lambda t: t.get("Created-By") == "Translations" and t.get("Language") == LANG, "Translation-" + LANG)

    # the Release file sits beside them: <prefix>dists_<suite>_InRelease
    base = os.path.basename(t_pkg["Filename"])
    prefix = base[:base.index("_dists_%s_" % suite) + len("_dists_%s_" % suite)]
    release_path = None
    for name in ("InRelease", "Release"):
        p = os.path.join(lists, prefix + name)
        if os.path.exists(p):
            release_path = p
            break
    if release_path is None:
        raise SystemExit("no InRelease/Release for %s in %s" % (suite, lists))
    with open(release_path, encoding="utf-8") as f:
        release_text = f.read()
    rhash = release_hashes(release_text)

    files = {}
    for t in (t_pkg, t_tr):
        raw = read_index(t["Filename"])
        info = {"target": t, "bytes": len(raw), "md5": hashlib.md5(raw).hexdigest(),
                "sha256": hashlib.sha256(raw).hexdigest()}
        want = rhash.get(("SHA256", t["MetaKey"]))
        if want is None or want != (info["sha256"], info["bytes"]):
            raise SystemExit("%s does not match the Release file's SHA256 for %s" % (t["Filename"], t["MetaKey"]))
        want_md5 = rhash.get(("MD5Sum", t["MetaKey"]))
        if want_md5 is not None and want_md5[0] != info["md5"]:
            raise SystemExit("%s does not match the Release file's MD5Sum" % t["Filename"])
        info["text"] = raw.decode("utf-8")  # strict: Debian indexes are UTF-8
        files[t["Created-By"]] = info

    counts = collections.Counter()

    # --- Packages ------------------------------------------------------------------
    packages = {}  # name -> (source, md5, summary); first stanza by file order if repeated
    for st in parse_deb822(files["Packages"]["text"]):
        counts["Packages stanzas"] += 1
        name = st["Package"]
        source = SOURCE_VERSION_RE.sub("", st.get("Source", name)).strip() or name
        desc = st.get("Description", "")
        summary = desc.split("\n", 1)[0]
        if "\n" in desc:
            counts["Packages stanzas with a long Description inline"] += 1
        if name in packages:
            counts["Packages stanzas repeating a package name (first kept)"] += 1
            continue
        packages[name] = (source, st.get("Description-md5", ""), summary, desc)

    # --- Translation-en ---------------------------------------------------------------
    trans = {}  # (package, md5) -> (summary, long)
    for st in parse_deb822(files["Translations"]["text"]):
        counts["Translation-en stanzas"] += 1
        summary, long_, md5 = long_description(st["Description-" + LANG])
        if md5 != st.get("Description-md5"):
            counts["Translation-en stanzas whose md5 does not match their text"] += 1
        trans[(st["Package"], st.get("Description-md5", ""))] = (summary, long_)

    # --- join, flatten, filter ----------------------------------------------------------
    rows = []  # (package, source, summary, long)
    for name in sorted(packages):
        source, md5, summary_p, desc_p = packages[name]
        counts["packages read"] += 1
        if md5 and (name, md5) in trans:
            summary_t, long_ = trans[(name, md5)]
            if flatten(summary_t) != flatten(summary_p):
                counts["summary in Translation-en differs from Packages (Packages' kept)"] += 1
        elif "\n" in desc_p:
            summary_t, long_, _ = long_description(desc_p)
            counts["long description taken from Packages itself"] += 1
        else:
            counts["dropped: no Translation-en entry for (Package, Description-md5)"] += 1
            continue
        summary = flatten(summary_p)
        if CONTROL_RE.search(summary) or CONTROL_RE.search(long_):
            counts["dropped: control characters"] += 1
            continue
        if not summary:
            counts["dropped: empty summary"] += 1
            continue
        if not long_:
            counts["dropped: empty long description"] += 1
            continue
        if long_ == summary:
            counts["dropped: long description equals the summary"] += 1
            continue
        rows.append((name, source, summary, long_))

    # --- dedupe: one text set over both columns, first by package name wins -------------
    n_long = collections.Counter(r[3] for r in rows)
    n_sum = collections.Counter(r[2] for r in rows)
    counts["packages sharing their long description with another (before dedupe)"] = sum(
        1 for r in rows if n_long[r[3]] > 1)
    counts["packages sharing their summary with another (before dedupe)"] = sum(
        1 for r in rows if n_sum[r[2]] > 1)
    seen = set()
    kept = []
    for r in rows:  # already sorted by package name
        if r[3] in seen:
            counts["dropped: long description already used"] += 1
            continue
        if r[2] in seen:
            counts["dropped: summary already used"] += 1
            continue
        seen.add(r[2])
        seen.add(r[3])
        kept.append(r)
    counts["pairs kept"] = len(kept)

    # --- split by source package --------------------------------------------------------
    by_split = {s: [] for s in SPLITS}
    for r in kept:
        by_split[split_of(r[1])].append(r)
    for s in SPLITS:  # fixed shuffle: order by sha256 of the package name
        by_split[s].sort(key=lambda r: sha("order", r[0]))
    src_split = collections.defaultdict(set)
    for s in SPLITS:
        for r in by_split[s]:
            src_split[r[1]].add(s)
    assert all(len(v) == 1 for v in src_split.values()), "a source package straddles splits"

    # --- write ----------------------------------------------------------------------------
    os.makedirs(args.out, exist_ok=True)
    sample_pct = 100
    while True:
        chosen = {s: [r for r in by_split[s] if sample_pct == 100 or int(sha("sample", r[0]), 16) % 100 < sample_pct]
                  for s in SPLITS}
        sizes = {}
        for s in SPLITS:
            path = os.path.join(args.out, s + ".tsv.xz")
            data = "".join("%s\t%s\n" % (r[2], r[3]) for r in chosen[s]).encode("utf-8")
            with lzma.open(path, "wb", preset=9) as f:
                f.write(data)
            sizes[s + ".tsv.xz"] = os.path.getsize(path)
        if sum(sizes.values()) <= MAX_TOTAL_BYTES or sample_pct <= 10:
            break
        sample_pct -= 10
    src_path = os.path.join(args.out, "sources.tsv.xz")
    with lzma.open(src_path, "wb", preset=9) as f:
        for s in SPLITS:
            for r in chosen[s]:
                f.write(("%s\t%s\t%s\n" % (s, r[0], r[1])).encode("utf-8"))
    sizes["sources.tsv.xz"] = os.path.getsize(src_path)

    # --- check what was written ------------------------------------------------------------
    all_texts = collections.Counter()
    for s in SPLITS:
        with lzma.open(os.path.join(args.out, s + ".tsv.xz"), "rb") as f:
            raw = f.read()
        lines = raw.split(b"\n")
        assert lines[-1] == b"", "file does not end with a newline"
        assert len(lines) - 1 == len(chosen[s])
        for i, line in enumerate(lines[:-1]):
            text = line.decode("utf-8")  # raises on invalid UTF-8
            assert text.count("\t") == 1, "%s line %d: not exactly one tab" % (s, i + 1)
            a, b = text.split("\t")
            assert a and b and a == a.strip() and b == b.strip(), "%s line %d: empty or padded field" % (s, i + 1)
            assert "\r" not in text and not CONTROL_RE.search(text.replace("\t", "")), "%s line %d" % (s, i + 1)
            all_texts[a] += 1
            all_texts[b] += 1
    dup_texts = sum(1 for v in all_texts.values() if v > 1)
    assert dup_texts == 0, "%d texts appear more than once" % dup_texts

    all_rows = [r for s in SPLITS for r in chosen[s]]
    st_sum = length_stats([r[2] for r in all_rows], 52)
    st_long = length_stats([r[3] for r in all_rows], 600)
    n = {s: len(chosen[s]) for s in SPLITS}
    n_src = {s: len({r[1] for r in chosen[s]}) for s in SPLITS}

    # --- stdout ---------------------------------------------------------------------------
    print("suite %s, component %s, architecture %s (+all), Release Date %s"
          % (suite, COMPONENT, ARCH, release_field(release_text, "Date")))
    print("packages read: %d" % counts["packages read"])
    print("pairs kept: %d%s" % (len(all_rows), "" if sample_pct == 100 else " (sample %d%%)" % sample_pct))
    for s in SPLITS:
        print("  %-10s %6d pairs, %5d source packages, %8d bytes xz" % (s, n[s], n_src[s], sizes[s + ".tsv.xz"]))
    for label, stt in (("summary", st_sum), ("long description", st_long)):
        print("%s bytes (UTF-8): median %d, p90 %d, p99 %d, max %d; longer than %d: %.1f%%"
              % (label, stt["median"], stt["p90"], stt["p99"], stt["max"], stt["threshold"], 100 * stt["share_longer"]))
    for k in sorted(counts):
        if k not in ("packages read", "pairs kept"):
            print("  %s: %d" % (k, counts[k]))

    # --- MANIFEST.md ------------------------------------------------------------------------
    def file_row(info, what):
        t = info["target"]
        return ("| %s | `%s` | `%s` | %d | `%s` | `%s` |"
                % (what, t["URI"], os.path.basename(t["Filename"]), info["bytes"], info["md5"], info["sha256"]))
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    m = []
    m.append("# packages data set: manifest\n")
    m.append("Generated by `data/packages/make_data.py` on %s (UTC).\n" % today)
    m.append("Regenerate (from the repository root, as root, with network access to the Debian mirror): `%s`\n" % REGEN)
    m.append("The output is deterministic for given Packages and Translation-en files (their hashes are below); "
             "a later run sees whatever the mirror serves then.\n")
    m.append("## Source\n")
    m.append("- Suite: `%s` (Debian %s, Release `Suite: %s`), component `%s`, architecture `%s` "
             "(the Release file says `No-Support-for-Architecture-all: %s`, so arch-`all` packages are in the amd64 Packages file)."
             % (suite, release_field(release_text, "Version"), release_field(release_text, "Suite"), COMPONENT, ARCH,
                release_field(release_text, "No-Support-for-Architecture-all")))
    m.append("- Mirror (from apt's sources, `%s`): `%s`" % (t_pkg.get("Sourcesentry", "?"), t_pkg.get("Repo-URI", "?")))
    m.append("- Release file `%s`: Date `%s`" % (os.path.basename(release_path), release_field(release_text, "Date")))
    m.append("- Only this suite is read: `%s-updates` and `%s-security`, which apt also fetched, are not used.\n" % (suite, suite))
    m.append("Files used (hashes of the decompressed files; both match the SHA256 and MD5Sum entries of the Release file):\n")
    m.append("| file | URI | name in the lists dir | bytes | md5 | sha256 |")
    m.append("|---|---|---|---:|---|---|")
    m.append(file_row(files["Packages"], "Packages"))
    m.append(file_row(files["Translations"], "Translation-en"))
    m.append("")
    m.append("They were fetched with `apt-get update -o Dir::State::Lists=WORK/lists -o Dir::Cache=WORK/cache "
             "-o Acquire::Languages=en` (a private lists directory, so the machine's own lists are not touched) and named by "
             "`apt-get indextargets` with the same options; decompressed with `apt-helper cat-file`.\n")
    m.append("## Files\n")
    m.append("| file | rows | source packages | bytes (xz) |")
    m.append("|---|---:|---:|---:|")
    for s in SPLITS:
        m.append("| `%s.tsv.xz` | %d | %d | %d |" % (s, n[s], n_src[s], sizes[s + ".tsv.xz"]))
    m.append("| **total** | %d | %d | %d |" % (len(all_rows), sum(n_src.values()), sum(sizes[s + ".tsv.xz"] for s in SPLITS)))
    m.append("")
    m.append("`sources.tsv.xz` (%d bytes): `split<TAB>package<TAB>source` for every row, in the same order as the rows "
             "of each split file.\n" % sizes["sources.tsv.xz"])
    if sample_pct == 100:
        m.append("All pairs are included (total under %d bytes, no sampling).\n" % MAX_TOTAL_BYTES)
    else:
        m.append("**Sample**: the full set was over %d bytes, so only rows with int(sha256('sample\\tPACKAGE')) %% 100 < %d "
                 "are included.\n" % (MAX_TOTAL_BYTES, sample_pct))
    m.append("## Lengths (bytes, UTF-8, over all rows; nearest-rank percentiles)\n")
    m.append("| field | median | p90 | p99 | max | share longer than |")
    m.append("|---|---:|---:|---:|---:|---|")
    for label, stt in (("summary", st_sum), ("long description", st_long)):
        m.append("| %s | %d | %d | %d | %d | %.1f%% > %d |" % (label, stt["median"], stt["p90"], stt["p99"], stt["max"],
                                                               100 * stt["share_longer"], stt["threshold"]))
    m.append("")
    m.append("## How the rows were made\n")
    m.append("1. Packages: per stanza, `Package`, `Source` (the package name if absent; a version in parentheses, "
             "as in `Source: foo (1.2-3)`, is stripped), `Description-md5`, and the first line of `Description` (the summary). "
             "A package name listed twice keeps its first stanza.")
    m.append("2. Translation-en: per stanza, `Package`, `Description-md5`, `Description-en`. The long description is the "
             "continuation lines (each without its one leading space); a line ` .` (paragraph separator) becomes a space; "
             "the lines are joined with spaces and all whitespace runs (spaces, tabs, newlines, the indentation of "
             "verbatim lines) are collapsed to one space, ends stripped. Paragraph structure and list layout are therefore "
             "not kept.")
    m.append("3. Join on (Package, Description-md5). The summary column is the Packages summary, whitespace-collapsed.")
    m.append("4. Dropped: packages without a Translation-en entry, with an empty long description, whose long "
             "description equals the summary, or with control characters.")
    m.append("5. Dedupe: packages are taken in order of package name (Python string order, i.e. byte order); a package is "
             "kept only if neither its summary nor its long description has appeared yet, in either column, among the "
             "packages kept before it. So each text (summary or long description) occurs exactly once in the whole data "
             "set, across all splits and both columns (checked on the written files).")
    m.append("6. Split by source package: int(sha256('split\\tSOURCE')) % 10: 0-7 train, 8 validation, 9 test. All "
             "binary packages of one source (e.g. `foo`, `libfoo-dev`, `foo-doc`) are in the same split (checked).")
    m.append("7. Row order within a split: by sha256('order\\tPACKAGE') (a fixed shuffle).")
    m.append("8. Each line is `summary<TAB>long description\\n`, UTF-8, no header, nothing escaped; checked after "
             "writing: valid UTF-8, exactly one tab, both fields non-empty. Compressed with Python `lzma`, preset 9 "
             "(single-threaded).\n")
    m.append("## Counts along the way\n")
    m.append("- packages read (distinct names in Packages): %d" % counts["packages read"])
    for k in sorted(counts):
        if k not in ("packages read", "pairs kept"):
            m.append("- %s: %d" % (k, counts[k]))
    m.append("- pairs kept: %d" % counts["pairs kept"])
    m.append("")
    m.append("Notes: a package name listed twice in Packages is a package with two versions in the suite (in this run "
             "linux-doc, linux-source and their -6.1 variants, same Description-md5 each). 'md5 does not match' means "
             "Debian's Description-md5 differs from the md5 recomputed from the Translation-en text (in this run the "
             "gdbm and ansi-up packages, presumably whitespace in the original control text); it is informational "
             "only: the join uses the Description-md5 fields as given, and those stanzas join normally. The 'sharing' "
             "counts are taken after flattening and the drops of step 4.\n")
    with open(os.path.join(args.out, "MANIFEST.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(m))


if __name__ == "__main__":
    main()
