#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""onnx_check.py - spool's ONNX export checked by onnx.checker and run in ONNX Runtime.

usage: onnx_check.py ONNX_SPOOL WORKDIR [SPOOL_CHARLM ONNX_MD]

ONNX_SPOOL WORKDIR/models writes one exported model per case with spool's own outputs on two
runs (tests/onnx/onnx_spool.c says which). For every case this script
  - runs onnx.checker.check_model with full_check (strict shape inference);
  - feeds each run's inputs to ONNX Runtime (CPU) and compares every output (logits, probs or
    y, every layer's final states) with spool's: max |ort - spool| / max |spool| <= 1e-5;
  - for one-directional stacks, runs run b again one step at a time (time = 1, each step's final
    states fed back as the next step's initial states, as a streaming caller does) and compares
    the same way.
With SPOOL_CHARLM and docs/onnx.md: trains a small char-LM, exports it with `spool-charlm export`,
runs the page's Python block on it and checks that it prints the log-probability that
`spool-charlm score anna` prints.
The Python packages (onnx, onnxruntime, numpy) are installed by pip into a virtual environment
WORKDIR/venv made on first use; without them (no network, no venv module) the test is skipped
with exit code 77 and a message saying why.
"""
import os
import subprocess
import sys
import venv

TOL = 1e-5
PKGS = ["numpy", "onnx", "onnxruntime"]


def skip(why):
    print(f"# skip: {why}")
    sys.exit(77)


def ensure_venv(workdir):
    """Re-runs this script under WORKDIR/venv's python with the packages, making it if needed."""
    env_dir = os.path.join(workdir, "venv")
    py = os.path.join(env_dir, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(env_dir):
        return
    probe = [py, "-c", "import numpy, onnx, onnxruntime"]
    if not (os.path.exists(py) and subprocess.run(probe, capture_output=True).returncode == 0):
        try:
            venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
        except Exception as e:  # pragma: no cover - depends on the machine
            skip(f"cannot create a virtual environment in {env_dir} ({e}); Debian: apt-get install python3-venv")
        pip = subprocess.run([py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"] + PKGS,
                             capture_output=True, text=True, timeout=900)
        if pip.returncode != 0:
            tail = (pip.stderr or pip.stdout).strip().splitlines()[-1:] or ["(no output)"]
            skip(f"pip could not install {' '.join(PKGS)} into {env_dir}: {tail[0]}")
    os.execv(py, [py] + sys.argv)


def read_io(path):
    """The arrays of a .io file (see onnx_spool.c): {name: ndarray}."""
    import numpy as np
    types = {"f32": np.float32, "i64": np.int64, "i32": np.int32}
    out = {}
    with open(path, "rb") as f:
        data = f.read()
    at = 0
    while at < len(data):
        nl = data.index(b"\n", at)
        name, dtype, ndim, *dims = data[at:nl].decode().split()
        assert int(ndim) == len(dims), f"{path}: {name}: header"
        dt = np.dtype(types[dtype]).newbyteorder("<")
        shape = [int(d) for d in dims]
        n = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        out[name] = np.frombuffer(data[nl + 1:nl + 1 + n], dtype=dt).reshape(shape)
        at = nl + 1 + n
    return out


def rel_err(got, want):
    import numpy as np
    if got.shape != want.shape:
        return float("inf")
    scale = float(np.max(np.abs(want))) if want.size else 0.0
    return float(np.max(np.abs(got.astype(np.float64) - want))) / max(scale, 1e-30) if want.size else 0.0


def charlm_doc(charlm, doc, workdir):
    """Problems (a list of strings) of the docs' Python block run on a fresh char-LM export."""
    import re
    run_dir = os.path.join(workdir, "charlm")
    os.makedirs(run_dir, exist_ok=True)
    text = open(doc, encoding="utf-8").read()
    section = text[text.index("## From the char-LM"):]  # up to the next section (the others: onnx_programs.py)
    section = section[:section.index("\n## ", 1)] if "\n## " in section[1:] else section
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    if len(blocks) != 1:
        return [f"{doc}: {len(blocks)} python blocks in 'From the char-LM', expected 1"]
    with open(os.path.join(run_dir, "run.py"), "w") as f:
        f.write(blocks[0])
    def sh(*cmd):
        return subprocess.run(cmd, cwd=run_dir, capture_output=True, text=True)
    for cmd in ([charlm, "train", "--data", "names", "--steps", "40", "--hidden", "24", "--layers", "2",
                 "--eval-every", "0", "--checkpoint-every", "0", "--plot", "none"],
                [charlm, "export", "--onnx", "charlm.onnx"]):
        r = sh(*cmd)
        if r.returncode != 0:
            return [f"{' '.join(cmd[1:3])}: exit {r.returncode}: {r.stderr.strip()[-300:]}"]
    want = re.search(r"log-probability (-?[0-9.]+) nats", sh(charlm, "score", "anna").stdout)
    got = sh(sys.executable, "run.py")
    have = re.search(r"log-probability (-?[0-9.]+) nats", got.stdout)
    if not want or not have:
        return [f"no log-probability: score {bool(want)}, the page's snippet: {got.stdout.strip()} {got.stderr.strip()[-300:]}"]
    print(f"# docs/onnx.md's snippet: {have.group(1)} nats, spool-charlm score: {want.group(1)} nats")
    return [] if abs(float(have.group(1)) - float(want.group(1))) <= 2e-4 else ["the snippet's log-probability differs"]


def main():
    if len(sys.argv) not in (3, 5):
        print(__doc__)
        return 2
    exe, workdir = sys.argv[1], sys.argv[2]
    os.makedirs(workdir, exist_ok=True)
    ensure_venv(workdir)
    import numpy as np
    import onnx
    import onnxruntime as ort

    models = os.path.join(workdir, "models")
    os.makedirs(models, exist_ok=True)
    gen = subprocess.run([exe, models], capture_output=True, text=True)
    if gen.returncode == 77:
        skip(gen.stderr.strip())
    if gen.returncode != 0:
        print(f"not ok - {exe} failed ({gen.returncode}): {gen.stderr.strip()}")
        return 1
    cases = gen.stdout.split()
    print(f"# onnx {onnx.__version__}, onnxruntime {ort.__version__}, {len(cases)} models")
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3  # not the warning that the optional inputs' defaults are not constants
    failed = worst = 0
    for case in cases:
        path = os.path.join(models, case + ".onnx")
        io = read_io(os.path.join(models, case + ".io"))
        problems = []
        try:
            onnx.checker.check_model(onnx.load(path), full_check=True)
        except Exception as e:
            problems.append(f"checker: {e}")
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        outs = [o.name for o in sess.get_outputs()]
        for run in ("a", "b"):
            feed = {k.split(".", 2)[2]: v for k, v in io.items() if k.startswith(f"run.{run}.")}
            got = dict(zip(outs, sess.run(outs, feed)))
            for k, want in io.items():
                if not k.startswith(f"want.{run}."):
                    continue
                name = k.split(".", 2)[2]
                e = rel_err(got[name], want)
                worst = max(worst, e)
                if not e <= TOL:
                    problems.append(f"run {run}: {name}: relative error {e:.3g}")
        if "_uni_" in case:  # streaming: run b one step at a time, states fed back
            feed = {k.split(".", 2)[2]: v for k, v in io.items() if k.startswith("run.b.")}
            x0 = "ids" if "ids" in feed else "x"
            T = feed[x0].shape[0]
            state, steps = {}, []
            for t in range(T):
                got = dict(zip(outs, sess.run(outs, {x0: feed[x0][t:t + 1], **state})))
                state = {n.replace("n_l", "0_l"): v for n, v in got.items() if n[1:4] == "n_l"}
                steps.append(got)
            for k, want in io.items():
                if k.startswith("want.b."):
                    name = k.split(".", 2)[2]
                    g = np.concatenate([s[name] for s in steps]) if name in ("logits", "probs", "y") else steps[-1][name]
                    e = rel_err(g, want)
                    worst = max(worst, e)
                    if not e <= TOL:
                        problems.append(f"streamed: {name}: relative error {e:.3g}")
        if problems:
            failed += 1
            print(f"not ok - {case}: " + "; ".join(problems))
        else:
            print(f"ok - {case}")
    print(f"# {len(cases) - failed}/{len(cases)} models equal spool's outputs; worst relative error {worst:.3g}")
    if len(sys.argv) == 5:
        problems = charlm_doc(os.path.abspath(sys.argv[3]), os.path.abspath(sys.argv[4]), workdir)
        print(("not ok - spool-charlm export + docs/onnx.md: " + "; ".join(problems)) if problems
              else "ok - spool-charlm export + docs/onnx.md's snippet")
        failed += bool(problems)
    return 1 if failed or not cases else 0


if __name__ == "__main__":
    sys.exit(main())
