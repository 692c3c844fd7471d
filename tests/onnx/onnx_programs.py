#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""onnx_programs.py - the example programs' exported models in ONNX Runtime, on real data.

usage: onnx_programs.py WORKDIR SPOOL_SENTIMENT SPOOL_NER SPOOL_DATES [DOCS_ONNX_MD [README_MD]]

spool-sentiment: three small models trained on the bundled sentiment-mr training split (a
BiLSTM pooled by its final states with a logistic output, a GRU pooled by the mean with a
softmax output, a minGRU, exported as a Scan, pooled by the max), each exported with
`spool-sentiment export --onnx M.onnx --ids test.ids` (the test split as word ids); ONNX
Runtime's accuracy and confusion counts over the whole test split (1066 sentences, run in
batches of 64 with lengths) must equal what `spool-sentiment eval` prints. spool-ner: a BiLSTM-CRF and a BiLSTM-softmax tagger trained on the bundled WikiGold training
split, exported with `spool-ner export --onnx M.onnx --ids test.ids`; ONNX Runtime's emission
scores, decoded here (Viterbi under the exported BIO masks with the exported transition scores,
or each token's argmax) and scored by conlleval's span rules, must give the gold, found and
correct entity counts and the F1 that `spool-ner eval` prints.

spool-dates: four small models (LSTM with additive attention, GRU without attention, minLSTM
with dot and minGRU with general attention: the encoder as ONNX's LSTM and GRU operators and as
Scans) trained on the generated data, each exported with `spool-dates export --onnx PREFIX --ids
FILE` (the held-out examples, then the human-typed dates_human_dev.tsv, with spool's greedy
readings and logits); greedy decoding in ONNX Runtime, looping over the decoder-step graph, must
give spool's reading of every text, its exact match (and on the held-out examples the one
training printed) and the logits of each step to 1e-5 relative.

With DOCS_ONNX_MD (and README_MD), the Python blocks of its sections "From spool-sentiment",
"From spool-ner" and "From spool-dates" run on models trained and exported as those sections
say, and must print the accuracy `spool-sentiment eval` prints, the tag accuracy `spool-ner
eval` prints and the exact match `spool-dates export` prints; the README's one-text decoder loop
must print spool's greedy reading of its text.

The packages (onnx, onnxruntime, numpy) come from the virtual environment tests/onnx/onnx_check.py
makes under WORKDIR (pip, first run only); exit 77 (skip, with the reason) when they cannot be had.
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from onnx_check import ensure_venv, skip  # noqa: E402  (one virtual environment for the ONNX tests)

SENT_MODELS = [  # name, training options
    ("bilstm_last_logistic", ["--cell", "lstm", "--bidir", "--pool", "last", "--output", "logistic"]),
    ("gru_mean_softmax", ["--cell", "gru", "--pool", "mean", "--output", "softmax", "--layers", "2"]),
    ("mingru_max_logistic", ["--cell", "mingru", "--pool", "max", "--output", "logistic"]),
]


def run(cmd, cwd):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {r.returncode}\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
    return r.stdout


def sentiment(exe, work):
    """ONNX Runtime's accuracy on the test split of each exported model equals spool's."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    ort.set_default_logger_severity(3)
    d = os.path.join(work, "sentiment")
    os.makedirs(d, exist_ok=True)
    ok = True
    for name, opts in SENT_MODELS:
        model = os.path.join(d, name + ".safetensors")
        run([exe, "train", "--data", "sentiment-mr", "--limit", "4000", "--epochs", "2", "--hidden", "16", "--embed", "16", "--lr", "0.005",
             "--threads", "1", "--log-every", "0", "--seed", "3", "--out", model] + opts, d)
        m = re.search(r"test accuracy ([0-9.]+) \((\d+)/(\d+); tp (\d+) tn (\d+) fp (\d+) fn (\d+)\)",
                      run([exe, "eval", "--data", "sentiment-mr", "--model", model], d))
        want = tuple(int(g) for g in m.groups()[1:])
        onnx_path, ids_path = os.path.join(d, name + ".onnx"), os.path.join(d, name + ".ids")
        run([exe, "export", "--data", "sentiment-mr", "--model", model, "--onnx", onnx_path, "--ids", ids_path], d)
        onnx.checker.check_model(onnx.load(onnx_path), full_check=True)
        sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        labels, sents = [], []
        with open(ids_path) as f:
            for line in f:
                lab, ids = line.rstrip("\n").split("\t")
                labels.append(int(lab))
                sents.append([int(i) for i in ids.split()])
        probs = []
        for s0 in range(0, len(sents), 64):  # as spool's eval: batches of 64, padded with -1
            batch = sents[s0:s0 + 64]
            T = max(1, max(len(s) for s in batch))
            ids = np.full((T, len(batch)), -1, dtype=np.int64)
            for b, s in enumerate(batch):
                ids[:len(s), b] = s
            lengths = np.array([len(s) for s in batch], dtype=np.int32)
            p = sess.run(["probs"], {"ids": ids, "lengths": lengths})[0]
            probs.extend(p[:, -1])  # logistic: P(positive); softmax: column 1
        pos = np.array(probs) >= 0.5
        lab = np.array(labels) == 1
        tp, tn = int(np.sum(pos & lab)), int(np.sum(~pos & ~lab))
        fp, fn = int(np.sum(pos & ~lab)), int(np.sum(~pos & lab))
        got = (tp + tn, len(labels), tp, tn, fp, fn)
        same = got == want
        ok = ok and same
        print(f"{'ok' if same else 'not ok'} - spool-sentiment {name}: ONNX Runtime accuracy {got[0] / got[1]:.4f} "
              f"({got[0]}/{got[1]}; tp {tp} tn {tn} fp {fp} fn {fn}), spool eval {want[0]}/{want[1]} "
              f"(tp {want[2]} tn {want[3]} fp {want[4]} fn {want[5]})")
    return ok


def viterbi(emit, trans, start, end, allowed, allowed_start):
    """The best tag path of one sentence's emission scores [n, K] under the masks (as sp_crf_decode)."""
    import numpy as np
    neg = -np.inf
    e = emit.astype(np.float64)
    tr = np.where(allowed > 0, trans.astype(np.float64), neg)
    score = np.where(allowed_start > 0, start + e[0], neg)
    back = []
    for t in range(1, len(e)):
        cand = score[:, None] + tr
        back.append(np.argmax(cand, axis=0))
        score = cand[back[-1], np.arange(len(score))] + e[t]
    best = [int(np.argmax(score + end))]
    for b in reversed(back):
        best.append(int(b[best[-1]]))
    return best[::-1]


def spans(tags):
    """conlleval's entity spans of BIO tags (as ner_spans): set of (begin, end, type)."""
    out, open_ = [], None
    for i, tag in enumerate(tags + ["O"]):
        p, ty = (tag[0], tag[2:]) if tag[:2] in ("B-", "I-") and len(tag) > 2 else ("O", "")
        if open_ is not None and (p != "I" or ty != open_[2]):
            out.append((open_[0], i, open_[2]))
            open_ = None
        if p == "B" or (p == "I" and open_ is None):
            open_ = (i, None, ty)
    return set(out)


def ner(exe, work):
    """ONNX Runtime's emission scores, decoded and scored, give spool-ner eval's entity counts and F1."""
    import numpy as np
    import onnxruntime as ort
    d = os.path.join(work, "ner")
    os.makedirs(d, exist_ok=True)
    ok = True
    for output in ("crf", "softmax"):
        model = os.path.join(d, output + ".safetensors")
        run([exe, "train", "--data", "ner-wikigold", "--limit", "1000", "--epochs", "4", "--hidden", "24", "--embed", "24", "--lr", "0.01",
             "--threads", "1", "--log-every", "0", "--output", output, "--out", model], d)
        ev = run([exe, "eval", "--data", "ner-wikigold", "--output", output, "--model", model], d)
        m = re.search(r"test: \d+ tokens, (\d+) gold entities, (\d+) found, (\d+) correct", ev)
        f1 = re.search(r"test: precision .*F1 +([0-9.]+)", ev).group(1)
        want = tuple(int(g) for g in m.groups())
        onnx_path, ids_path = os.path.join(d, output + ".onnx"), os.path.join(d, output + ".ids")
        run([exe, "export", "--data", "ner-wikigold", "--output", output, "--model", model, "--onnx", onnx_path,
             "--ids", ids_path], d)
        sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        tags = sess.get_modelmeta().custom_metadata_map["ner.tags"].split("\n")
        sents = []
        with open(ids_path) as f:
            for line in f:
                w, c, g = (list(map(int, part.split())) for part in line.rstrip("\n").split("\t"))
                sents.append((w, c, g))
        gold = found = correct = 0
        outs = ["logits"] + (["crf_transitions", "crf_start", "crf_end", "bio_allowed", "bio_allowed_start"]
                             if output == "crf" else [])
        for s0 in range(0, len(sents), 64):  # as eval: batches of 64 with lengths
            batch = sents[s0:s0 + 64]
            T = max(1, max(len(s[0]) for s in batch))
            ids, case = (np.full((T, len(batch)), -1, dtype=np.int64) for _ in range(2))
            for b, (w, c, _) in enumerate(batch):
                ids[:len(w), b], case[:len(c), b] = w, c
            lengths = np.array([len(s[0]) for s in batch], dtype=np.int32)
            res = sess.run(outs, {"ids": ids, "case": case, "lengths": lengths})
            for b, (w, _, g) in enumerate(batch):
                n = len(w)
                if output == "crf":
                    tr, st, en, al, al0 = res[1], res[2][0], res[3][0], res[4], res[5][0]
                    path = viterbi(res[0][:n, b], tr, st, en, al, al0) if n else []
                else:
                    path = [int(k) for k in np.argmax(res[0][:n, b], axis=-1)]
                gs, ps = spans([tags[k] for k in g]), spans([tags[k] for k in path])
                gold, found, correct = gold + len(gs), found + len(ps), correct + len(gs & ps)
        p = correct / found if found else 0.0
        r = correct / gold if gold else 0.0
        got_f1 = f"{100 * (2 * p * r / (p + r) if p + r else 0.0):.2f}"
        got = (gold, found, correct)
        same = got == want and got_f1 == f1
        ok = ok and same
        print(f"{'ok' if same else 'not ok'} - spool-ner {output}: ONNX Runtime + decoding: {gold} gold, {found} found, "
              f"{correct} correct, F1 {got_f1}; spool eval: {want[0]} gold, {want[1]} found, {want[2]} correct, F1 {f1}")
    return ok


DATES_MODELS = [  # name, training options: every kind of attention and none, an LSTM's two states, the
    # encoder as ONNX's LSTM and GRU operators and as Scans (minLSTM, minGRU); hidden 32, so dot needs 64
    ("lstm_additive", ["--cell", "lstm", "--attention", "additive", "--dec-hidden", "48", "--steps", "300"]),
    ("gru_none", ["--cell", "gru", "--attention", "none", "--dec-hidden", "48", "--steps", "150"]),
    ("minlstm_dot", ["--cell", "minlstm", "--attention", "dot", "--dec-hidden", "64", "--steps", "150"]),
    ("mingru_general", ["--cell", "mingru", "--attention", "general", "--dec-hidden", "48", "--steps", "150"]),
]


def dates_greedy(enc, dec, ids):
    """Greedy decoding in ONNX Runtime of texts given as char ids, in one batch with lengths: the
    readings and the logits of each step [n, 10, 11]."""
    import numpy as np
    x = np.full((max(map(len, ids)), len(ids)), -1, dtype=np.int64)
    for b, row in enumerate(ids):
        x[:len(row), b] = row
    lengths = np.array([len(row) for row in ids], dtype=np.int32)
    wanted = {i.name for i in dec.get_inputs()} | {i.name for i in dec.get_overridable_initializers()}
    outs = dict(zip([o.name for o in enc.get_outputs()], enc.run(None, {"ids": x, "lengths": lengths})))
    feed = {k: v for k, v in outs.items() if k in wanted}
    if "lengths" in wanted:
        feed["lengths"] = lengths
    prev, iso, logits = np.full(len(ids), 11, dtype=np.int64), [""] * len(ids), []
    for _ in range(10):
        out = dict(zip([o.name for o in dec.get_outputs()], dec.run(None, {**feed, "prev": prev})))
        logits.append(out["logits"])
        prev = out["logits"].argmax(axis=1)
        feed.update({k[:-5]: v for k, v in out.items() if k.endswith("_next")})
        iso = [s + "0123456789-"[p] for s, p in zip(iso, prev)]
    return iso, np.stack(logits, axis=1)


def dates(exe, work):
    """ONNX Runtime's greedy decoding with the exported encoder and decoder step gives spool's
    readings, logits (1e-5 relative) and exact match, on held-out examples and on human-typed dates."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    d = os.path.join(work, "dates")
    os.makedirs(d, exist_ok=True)
    ok = True
    for name, opts in DATES_MODELS:
        model = os.path.join(d, name + ".safetensors")
        log = run([exe, "--hidden", "32", "--emb", "16", "--test-n", "500", "--eval-every", "1000000", "--beam", "1",
                   "--show", "0", "--threads", "1", "--save", model] + opts, d)
        trained = re.search(r"test exact-match: greedy ([0-9.]+)", log).group(1)
        prefix = os.path.join(d, name)
        for split, extra in (("test", []), ("human", ["--eval-file", "dates_human_dev.tsv"])):
            ids_path = f"{prefix}.{split}.ids"
            printed = run([exe, "export", "--load", model, "--onnx", prefix, "--ids", ids_path, "--test-n", "500"] + extra, d)
            spool_acc = re.search(r"spool's greedy exact match ([0-9.]+)", printed).group(1)
            problems = []
            if split == "test" and spool_acc != trained:
                problems.append(f"export's greedy exact match {spool_acc}, training's {trained}")
            for part in ("encoder", "decoder"):
                onnx.checker.check_model(onnx.load(f"{prefix}.{part}.onnx"), full_check=True)
            so = ort.SessionOptions()
            so.intra_op_num_threads = 1
            so.log_severity_level = 3  # not the warning that the optional inputs' defaults are not constants
            enc, dec = (ort.InferenceSession(f"{prefix}.{p}.onnx", so, providers=["CPUExecutionProvider"])
                        for p in ("encoder", "decoder"))
            rows = [line.rstrip("\n").split("\t") for line in open(ids_path)]
            iso, logits = dates_greedy(enc, dec, [[int(i) for i in r[0].split()] for r in rows])
            want = np.array([[float(v) for v in r[3].split()] for r in rows]).reshape(len(rows), 10, 11)
            same = sum(a == r[2] for a, r in zip(iso, rows))
            acc = f"{np.mean([a == r[1] for a, r in zip(iso, rows)]):.4f}"
            # the logits along spool's path: equal up to the first character read otherwise
            err = max(float(np.max(np.abs(logits[i] - want[i]))) / max(float(np.max(np.abs(want[i]))), 1e-30)
                      for i in range(len(rows)) if iso[i] == rows[i][2]) if same else float("inf")
            if same != len(rows):
                problems.append(f"{len(rows) - same} readings differ from spool's")
            if acc != spool_acc:
                problems.append(f"exact match {acc}, spool's {spool_acc}")
            if not err <= 1e-5:
                problems.append(f"logits: relative error {err:.3g}")
            ok = ok and not problems
            print(f"{'not ok' if problems else 'ok'} - spool-dates {name} ({split}, {len(rows)} texts): ONNX Runtime's "
                  f"greedy readings {same}/{len(rows)} spool's, exact match {acc} (spool {spool_acc}), logits within "
                  f"{err:.2g} relative" + ("; " + "; ".join(problems) if problems else ""))
    return ok


def dates_docs(exe, work, docs):
    """The Python of docs/onnx.md's "From spool-dates" prints the exact match spool-dates export printed, and
    the README's one-text loop prints the reading spool's greedy decoding gives that text."""
    d = os.path.join(work, "dates-docs")
    os.makedirs(d, exist_ok=True)
    run([exe, "--attention", "additive", "--steps", "300", "--hidden", "32", "--emb", "16", "--dec-hidden", "48",
         "--test-n", "300", "--eval-every", "1000000", "--beam", "1", "--show", "0", "--threads", "1",
         "--save", "dates.safetensors"], d)
    want = re.search(r"exact match ([0-9.]+)", run([exe, "export", "--load", "dates.safetensors", "--onnx", "dates",
                                                    "--ids", "dates-test.ids", "--test-n", "300"], d)).group(1)
    ok = True
    for doc in docs:
        text = open(doc, encoding="utf-8").read()
        if doc.endswith("onnx.md"):
            section = text[text.index("## From spool-dates"):]
            code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
            got = run([sys.executable, "-c", code], d).strip()
            same = got == f"exact match {want}"
            print(f"{'ok' if same else 'not ok'} - docs/onnx.md's 'From spool-dates' example prints '{got}', spool "
                  f"export's greedy exact match {want}")
        else:  # the README: one text, read greedily; spool's greedy reading of it from export --ids --eval-file
            code = re.search(r"```python\n(.*?)```", text[text.index("spool-dates export"):], re.S).group(1)
            line = re.search(r'text = "([^"]+)"', code).group(1)
            with open(os.path.join(d, "one.tsv"), "w") as f:
                f.write(f"{line}\t1998-03-03\n")
            run([exe, "export", "--load", "dates.safetensors", "--onnx", "dates", "--ids", "one.ids", "--eval-file",
                 "one.tsv"], d)
            spool = open(os.path.join(d, "one.ids")).read().split("\t")[2]
            got = run([sys.executable, "-c", code], d).strip()
            same = got == spool
            print(f"{'ok' if same else 'not ok'} - README.md's ONNX example reads '{line}' as '{got}', spool's greedy "
                  f"decoding as '{spool}'")
        ok = ok and same
    return ok


def doc_example(exe, doc, work, section, data, train_opts, files, result):
    """The Python block of docs/onnx.md's section, run where the program trained and exported a model
    to the files it reads, must print the number `eval` prints (result: the regex of eval's line)."""
    d = os.path.join(work, section.split()[-1])
    os.makedirs(d, exist_ok=True)
    text = open(doc, encoding="utf-8").read()
    code = re.search(r"```python\n(.*?)```", text[text.index("## " + section):], re.S).group(1)
    model = os.path.join(d, "model.safetensors")
    run([exe, "train", "--data", data, "--threads", "1", "--log-every", "0", "--out", model] + train_opts, d)
    want = re.search(result, run([exe, "eval", "--data", data, "--model", model], d)).group(1)
    run([exe, "export", "--data", data, "--model", model, "--onnx", files[0], "--ids", files[1]], d)
    got = run([sys.executable, "-c", code], d).strip()
    printed = re.search(result, "test " + got)  # eval's line reads "test accuracy ...", the docs' "accuracy ..."
    same = printed is not None and printed.group(1) == want
    print(f"{'ok' if same else 'not ok'} - docs/onnx.md's '{section}' example prints '{got}', spool eval {want}")
    return same


def main():
    if len(sys.argv) < 5:
        print(__doc__)
        return 2
    work, sent, dates_exe = sys.argv[1], os.path.abspath(sys.argv[2]), os.path.abspath(sys.argv[4])
    os.makedirs(work, exist_ok=True)
    ensure_venv(work)
    try:
        import numpy  # noqa: F401
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as e:  # pragma: no cover - depends on the machine
        skip(f"cannot import the packages: {e}")
    ok = sentiment(sent, work)
    ok = ner(os.path.abspath(sys.argv[3]), work) and ok
    ok = dates(dates_exe, work) and ok
    if len(sys.argv) > 5:
        ok = dates_docs(dates_exe, work, [os.path.abspath(p) for p in sys.argv[5:7]]) and ok
        ok = doc_example(sent, sys.argv[5], work, "From spool-sentiment", "sentiment-uci",
                         ["--limit", "2000", "--epochs", "3", "--hidden", "16", "--embed", "16"],
                         ("sentiment.onnx", "uci-test.ids"), r"test accuracy ([0-9.]+)") and ok
        ok = doc_example(os.path.abspath(sys.argv[3]), sys.argv[5], work, "From spool-ner", "ner-wikigold",
                         ["--limit", "400", "--epochs", "2", "--hidden", "16", "--embed", "16", "--lr", "0.01"],
                         ("ner.onnx", "wg-test.ids"), r"tag accuracy ([0-9.]+%)") and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
