#!/usr/bin/python3
"""Build the graphrun language-identification data set from Debian's gettext catalogs.

Reads every /usr/share/locale/*/LC_MESSAGES/*.mo file (parsed directly, standard
library only), keeps the translated strings of ten languages, cleans and
deduplicates them, splits train/validation/test by the English source message
(sha256 buckets, 80/10/10), caps each language per split, and writes
train.tsv, validation.tsv, test.tsv (text<TAB>language), sources.tsv and
MANIFEST.md next to this script.  Deterministic for a given set of installed
packages.

Usage: /usr/bin/python3 data/langid/make_data.py [--locale-dir DIR] [--out DIR]
"""
import argparse
import glob
import hashlib
import os
import re
import struct
import subprocess
import sys
from collections import Counter, defaultdict

PRIMARY = ["de", "es", "fr", "it", "nl", "pl", "pt", "ru", "sv", "ja"]
BACKUPS = ["cs", "tr", "uk"]  # substitutes, in order, if a primary language is short
CAPS = {"train": 3000, "validation": 400, "test": 400}
SPLITS = ["train", "validation", "test"]
MIN_CHARS, MAX_CHARS = 3, 200
REGEN = "/usr/bin/python3 data/langid/make_data.py"

# printf (%s, %-10.3lf, %1$s, %'d, %<PRIu64>), Python (%(name)s, {0}, {name!r:>10}),
# shell/perl-style ${var} and $var, Qt %1.
FORMAT_RE = re.compile(
    r"%(?:\d+\$)?[-+ #0']*(?:\d+|\*)?(?:\.(?:\d+|\*))?"
    r"(?:hh|h|ll|l|L|q|j|z|Z|t|I64|I32|I)?[diouxXeEfFgGaAcCsSpnm%]"
    r"|%<PRI[a-zA-Z0-9]+>"
    r"|%\([A-Za-z_][A-Za-z0-9_]*\)[-+ #0]*\d*(?:\.\d+)?[a-zA-Z]"
    r"|%\d+"
    r"|\{[A-Za-z0-9_.\[\]]*(?:![rsa])?(?::[^{}]*)?\}"
    r"|\$\{[A-Za-z_][A-Za-z0-9_]*\}|\$[A-Za-z_][A-Za-z0-9_]*"
)
LETTER_RE = re.compile(r"[^\W\d_]")          # any Unicode letter
CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f]")  # Unicode category Cc


def sha(*parts):
    return hashlib.sha256("\t".join(parts).encode("utf-8")).hexdigest()


def language_of(folder):
    """fr_CA -> fr, de_DE.UTF-8 -> de; None for '@' variants and locale.alias-like names."""
    if "@" in folder:
        return None
    return re.split(r"[_.]", folder, 1)[0]


def parse_mo(data):
    """Yield (msgid, msgstr) byte pairs (context stripped, singular forms) and the charset."""
    magic = data[:4]
    if magic == b"\xde\x12\x04\x95":
        end = "<"
    elif magic == b"\x95\x04\x12\xde":
        end = ">"
    else:
        raise ValueError("bad magic")
    _rev, n, orig_off, trans_off = struct.unpack_from(end + "4I", data, 4)
    otab = struct.unpack_from(end + "%dI" % (2 * n), data, orig_off)
    ttab = struct.unpack_from(end + "%dI" % (2 * n), data, trans_off)
    size = len(data)
    pairs = []
    for i in range(0, 2 * n, 2):
        olen, opos, tlen, tpos = otab[i], otab[i + 1], ttab[i], ttab[i + 1]
        if opos + olen > size or tpos + tlen > size:
            raise ValueError("entry outside file")
        pairs.append((data[opos:opos + olen], data[tpos:tpos + tlen]))
    charset = "utf-8"
    for msgid, msgstr in pairs:
        if msgid == b"":
            m = re.search(rb"charset=([A-Za-z0-9_.:-]+)", msgstr)
            if m:
                cs = m.group(1).decode("ascii").lower()
                if cs not in ("charset", "ascii", "us-ascii"):
                    charset = cs
    try:
        "".encode(charset)
    except LookupError:
        charset = "utf-8"
    out = []
    for msgid, msgstr in pairs:
        if b"\x04" in msgid:  # msgctxt \x04 msgid
            msgid = msgid.split(b"\x04", 1)[1]
        msgid = msgid.split(b"\x00", 1)[0]      # singular msgid
        msgstr = msgstr.split(b"\x00", 1)[0]    # msgstr[0]
        out.append((msgid, msgstr))
    return out, charset


def clean(s):
    return " ".join(s.split())


def reject_reason(text, english):
    if len(text) < MIN_CHARS:
        return "shorter than %d characters" % MIN_CHARS
    if len(text) > MAX_CHARS:
        return "longer than %d characters (dropped, not cut)" % MAX_CHARS
    if not LETTER_RE.search(FORMAT_RE.sub("", text)):
        return "only punctuation/digits/format specifiers"
    if CONTROL_RE.search(text):
        return "contains control characters"
    if text.casefold() == english.casefold():
        return "equal to the English source (case-insensitive)"
    return None


def dpkg_owners(paths):
    """Map file path -> (binary package name, Package, Version) from /var/lib/dpkg/info/*.list."""
    wanted = set(paths)
    owner = {}
    for lst in sorted(glob.glob("/var/lib/dpkg/info/*.list")):
        pkg = os.path.basename(lst)[:-5]
        with open(lst, encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                p = line.rstrip("\n")
                if p in wanted:
                    owner.setdefault(p, set()).add(pkg)
    versions = {}
    res = subprocess.run(["dpkg-query", "-W", "-f=${binary:Package}\t${Package}\t${Version}\n"],
                         check=True, capture_output=True, text=True)
    for line in res.stdout.splitlines():
        bp, p, v = line.split("\t")
        versions[bp] = (p, v)
        versions.setdefault(p, (p, v))
    out = {}
    for p in paths:
        pk = sorted(owner.get(p, ()))
        if pk:
            name, ver = versions.get(pk[0], (pk[0].split(":")[0], "?"))
            out[p] = (name, ver)
        else:
            out[p] = ("(no owner)", "")
    return out


def read_catalogs(locale_dir, wanted_langs):
    """Parse every catalog (counting failures); decode the pairs of the wanted languages."""
    stats = Counter({k: 0 for k in ("mo files found", "mo files parsed",
                                    "mo files that failed to parse",
                                    "mo files skipped: symlink to a file already read",
                                    "mo files skipped: '@' variant",
                                    "mo files skipped: other language",
                                    "entries skipped: decode error")})
    records = defaultdict(list)  # lang -> [(text, english, path)]
    files = sorted(glob.glob(os.path.join(locale_dir, "*", "LC_MESSAGES", "*.mo")))
    stats["mo files found"] = len(files)
    seen_real = set()
    file_lang = {}
    for path in files:
        folder = os.path.relpath(path, locale_dir).split(os.sep)[0]
        lang = language_of(folder)
        real = os.path.realpath(path)
        if real in seen_real:
            stats["mo files skipped: symlink to a file already read"] += 1
            continue
        seen_real.add(real)
        try:
            with open(real, "rb") as f:
                pairs, charset = parse_mo(f.read())
        except (OSError, ValueError, struct.error):
            stats["mo files that failed to parse"] += 1
            continue
        stats["mo files parsed"] += 1
        if lang is None:
            stats["mo files skipped: '@' variant"] += 1
            continue
        if lang not in wanted_langs:
            stats["mo files skipped: other language"] += 1
            continue
        file_lang[real] = (folder, lang)
        for bid, bstr in pairs:
            if not bid or not bstr:
                continue
            try:
                english = clean(bid.decode(charset))
                text = clean(bstr.decode(charset))
            except (UnicodeDecodeError, LookupError):
                stats["entries skipped: decode error"] += 1
                continue
            if not english or not text:
                continue
            records[lang].append((text, english, real))
    return records, file_lang, stats


def build(records, langs):
    """Filter, dedupe, split, cap.  Returns (rows per split, available counts, filter stats)."""
    fstats = Counter()
    pool = {}  # (lang, text) -> (english, path), keeping min by (sha(english), english, path)
    for lang in langs:
        for text, english, path in records.get(lang, ()):
            fstats["pairs with non-empty msgstr"] += 1
            why = reject_reason(text, english)
            if why:
                fstats["dropped: " + why] += 1
                continue
            key = (lang, text)
            cand = (sha("split", english), english, path)
            old = pool.get(key)
            if old is None:
                pool[key] = cand
            else:
                fstats["dropped: duplicate (same text, same language)"] += 1
                if cand < old:
                    pool[key] = cand
    langs_of_text = defaultdict(set)
    for lang, text in pool:
        langs_of_text[text].add(lang)
    avail = defaultdict(list)  # (lang, split) -> [(text, english, path)]
    for (lang, text), (h, english, path) in pool.items():
        if len(langs_of_text[text]) > 1:
            fstats["dropped: text occurs in more than one language"] += 1
            continue
        b = int(h, 16) % 10
        split = "train" if b < 8 else "validation" if b == 8 else "test"
        avail[(lang, split)].append((text, english, path))
    # Leakage check on the whole pool, before capping.
    eng = {s: {e for (l, sp), rows in avail.items() if sp == s for _, e, _ in rows} for s in SPLITS}
    shared_pool = sum(len(eng[a] & eng[b]) for i, a in enumerate(SPLITS) for b in SPLITS[i + 1:])
    assert shared_pool == 0, shared_pool
    chosen = {s: [] for s in SPLITS}
    for (lang, split), rows in avail.items():
        rows = sorted(rows, key=lambda r: sha("pick", lang, r[0]))[:CAPS[split]]
        chosen[split].extend((text, lang, english, path) for text, english, path in rows)
    for s in SPLITS:
        chosen[s].sort(key=lambda r: sha("order", s, r[1], r[0]))
    counts_avail = {k: len(v) for k, v in avail.items()}
    return chosen, counts_avail, fstats


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--locale-dir", default="/usr/share/locale")
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    args = ap.parse_args()

    records, file_lang, stats = read_catalogs(args.locale_dir, set(PRIMARY + BACKUPS))

    # Language choice: a primary language is "short" if it cannot fill every per-split cap.
    langs = list(PRIMARY)
    backups = list(BACKUPS)
    substitutions = []
    while True:
        chosen, avail, fstats = build(records, langs)
        short = [l for l in langs if any(avail.get((l, s), 0) < CAPS[s] for s in SPLITS)
                 and l in PRIMARY]
        short = [l for l in short if l not in [a for a, _ in substitutions]]
        if not short or not backups:
            break
        bad, sub = short[0], backups.pop(0)
        print("language %s is short of data %s; substituting %s" %
              (bad, {s: avail.get((bad, s), 0) for s in SPLITS}, sub), file=sys.stderr)
        substitutions.append((bad, sub))
        langs = [sub if l == bad else l for l in langs]
    langs_sorted = sorted(langs)

    # The check: English messages shared between splits (must be 0).
    eng = {s: {r[2] for r in chosen[s]} for s in SPLITS}
    shared = {(a, b): len(eng[a] & eng[b]) for i, a in enumerate(SPLITS) for b in SPLITS[i + 1:]}
    assert all(v == 0 for v in shared.values()), shared
    for s in SPLITS:
        for text, lang, _, _ in chosen[s]:
            assert "\t" not in text and "\n" not in text and "\r" not in text

    os.makedirs(args.out, exist_ok=True)
    sizes = {}
    for s in SPLITS:
        path = os.path.join(args.out, s + ".tsv")
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            for text, lang, _, _ in chosen[s]:
                f.write("%s\t%s\n" % (text, lang))
        sizes[s] = os.path.getsize(path)

    # Provenance.
    rows_per_file = Counter()
    rows_per_file_split = defaultdict(Counter)
    for s in SPLITS:
        for _, _, _, path in chosen[s]:
            rows_per_file[path] += 1
            rows_per_file_split[path][s] += 1
    owners = dpkg_owners(sorted(rows_per_file))
    pkg_rows = Counter()
    pkg_files = Counter()
    for path, n in rows_per_file.items():
        pkg_rows[owners[path]] += n
        pkg_files[owners[path]] += 1
    with open(os.path.join(args.out, "sources.tsv"), "w", encoding="utf-8", newline="\n") as f:
        f.write("path\tlocale\tlanguage\tpackage\tversion\ttrain\tvalidation\ttest\ttotal\n")
        for path in sorted(rows_per_file):
            folder, lang = file_lang[path]
            name, ver = owners[path]
            c = rows_per_file_split[path]
            f.write("\t".join([path, folder, lang, name, ver] +
                              [str(c[s]) for s in SPLITS] + [str(rows_per_file[path])]) + "\n")

    total = sum(len(chosen[s]) for s in SPLITS)
    counts = {(l, s): 0 for l in langs_sorted for s in SPLITS}
    for s in SPLITS:
        for _, lang, _, _ in chosen[s]:
            counts[(lang, s)] += 1

    L = []
    L.append("# langid data set: manifest\n")
    L.append("Generated by `data/langid/make_data.py` from the gettext catalogs installed on this machine.\n")
    L.append("Regenerate (from the repository root): `%s`\n" % REGEN)
    L.append("Output is deterministic for a given set of installed packages: no randomness, "
             "all selection and ordering is by sha256 of the texts.\n")
    L.append("## Languages\n")
    L.append("Kept (class order = sorted codes): %s\n" % " ".join(langs_sorted))
    if substitutions:
        for bad, sub in substitutions:
            L.append("- %s had too little data and was replaced by %s.\n" % (bad, sub))
    else:
        L.append("All ten first-choice languages had enough data; no substitution was needed.\n")
    L.append("## Rows per language and split\n")
    L.append("| language | train | validation | test | available train | available validation | available test |")
    L.append("|---|---:|---:|---:|---:|---:|---:|")
    for l in langs_sorted:
        L.append("| %s | %d | %d | %d | %d | %d | %d |" % (
            l, counts[(l, "train")], counts[(l, "validation")], counts[(l, "test")],
            avail.get((l, "train"), 0), avail.get((l, "validation"), 0), avail.get((l, "test"), 0)))
    L.append("| **total** | %d | %d | %d | | | |" % tuple(len(chosen[s]) for s in SPLITS))
    L.append("\nTotal rows: %d. File sizes (bytes): %s.\n" % (
        total, ", ".join("%s.tsv %d" % (s, sizes[s]) for s in SPLITS)))
    L.append("## Check: English messages shared between splits\n")
    for (a, b), v in shared.items():
        L.append("- %s / %s: %d" % (a, b, v))
    L.append("\nAsserted to be 0 by the script, both on the written rows and on the whole "
             "pool before capping.\n")
    L.append("## How the rows were made\n")
    L.append("1. Every `%s/*/LC_MESSAGES/*.mo` file is parsed directly (format per GNU gettext); "
             "symlinks to a file already read are skipped. For each entry with a non-empty "
             "translation: English = msgid (singular, msgctxt removed), text = msgstr[0]. "
             "The header entry (empty msgid) is skipped. Strings are decoded with the "
             "catalog's charset." % args.locale_dir)
    L.append("2. Language = locale folder name up to the first `_` or `.` (pt_BR -> pt, "
             "de_CH -> de); folders containing `@` (en@quot, sr@latin, ca@valencia) are dropped.")
    L.append("3. Whitespace (including newlines and tabs) collapsed to single spaces, stripped. "
             "Dropped: texts shorter than %d or longer than %d characters (long texts are "
             "dropped, never cut); texts with no letter once printf/Python/shell format "
             "specifiers are removed (only punctuation/digits/format specifiers); texts "
             "containing control characters; texts equal to their English msgid "
             "(compared case-insensitively); texts occurring in more than one of the kept "
             "languages (exact match after cleaning); duplicates of the same text in the same "
             "language (one kept: the one whose English msgid has the smallest sha256)."
             % (MIN_CHARS, MAX_CHARS))
    L.append("4. Split by the cleaned English msgid: int(sha256('split\\t' + english)) %% 10: "
             "0-7 train, 8 validation, 9 test, so all translations of one English message "
             "are in the same split.")
    L.append("5. Cap per language: at most %d train, %d validation, %d test rows, the ones "
             "with the smallest sha256('pick\\tlang\\ttext')." %
             (CAPS["train"], CAPS["validation"], CAPS["test"]))
    L.append("6. Rows written in order of sha256('order\\tsplit\\tlang\\ttext'), one "
             "`text<TAB>language` line each, UTF-8, no escaping, no header.\n")
    L.append("## Counts along the way\n")
    for k in sorted(stats):
        L.append("- %s: %d" % (k, stats[k]))
    for k in sorted(fstats):
        L.append("- %s (kept languages): %d" % (k, fstats[k]))
    L.append("")
    L.append("## Packages that contributed rows\n")
    L.append("%d packages, %d .mo files. Ownership from /var/lib/dpkg/info/*.list, versions "
             "from `dpkg-query -W`. Per-file detail (path, locale, language, package, version, "
             "rows per split) is in `sources.tsv`. Each package's copyright and licence "
             "(/usr/share/doc/PACKAGE/copyright) applies to its strings.\n"
             % (len(pkg_rows), len(rows_per_file)))
    L.append("| package | version | .mo files | rows |")
    L.append("|---|---|---:|---:|")
    for (name, ver), n in sorted(pkg_rows.items(), key=lambda kv: (-kv[1], kv[0])):
        L.append("| %s | %s | %d | %d |" % (name, ver, pkg_files[(name, ver)], n))
    with open(os.path.join(args.out, "MANIFEST.md"), "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(L) + "\n")

    print("languages: %s" % " ".join(langs_sorted), file=sys.stderr)
    for l in langs_sorted:
        print("%s train %d validation %d test %d" % (
            l, counts[(l, "train")], counts[(l, "validation")], counts[(l, "test")]), file=sys.stderr)
    print("total %d rows; sizes %s; packages %d; mo files %d; shared English between splits %s" % (
        total, sizes, len(pkg_rows), len(rows_per_file), sum(shared.values())), file=sys.stderr)


if __name__ == "__main__":
    main()
