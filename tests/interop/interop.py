#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""interop.py - spool checkpoints and torch.nn recurrent modules, both ways.

usage: interop.py INTEROP_SPOOL WORKDIR

1. spool -> torch: INTEROP_SPOOL save WORKDIR writes spool_NAME.safetensors (model only) and
   spool_NAME_io.safetensors (input, outputs, final states). Each model goes into the torch.nn
   module its metadata describes with load_state_dict(strict=True); the same input must give the
   same output, h_n (and c_n) to 1e-5.
2. torch -> spool: a torch.nn module with PyTorch's own random init is saved as
   torch_NAME.safetensors (state_dict, config in __metadata__) with its outputs in
   torch_NAME_io.safetensors; INTEROP_SPOOL check WORKDIR NAME loads it and compares.
3. optimizers: INTEROP_SPOOL optim WORKDIR runs a few steps of each optimizer configuration and
   saves parameters + optimizer state; torch.optim, configured from the file's spool.optim.*
   metadata, replays the same gradients and learning rates in float32; parameters, the state
   tensors (optim.<kind>.<torch state key>.<name>) and the step must agree to 1e-5.

The .safetensors files stay in WORKDIR. The format is read and written here with json/struct
(Debian's python3-torch has no safetensors package), which also checks spool's files against an
independent reader. Exit 77 (skip) if torch cannot be imported.
"""
import json
import os
import struct
import subprocess
import sys

try:
    import numpy as np
    import torch
except Exception as e:  # pragma: no cover - depends on the machine
    print(f"# skip: torch not importable ({e})")
    sys.exit(77)

TOL = 1e-5


def st_read(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    assert 8 + n <= len(data), f"{path}: header length past the end"
    header = json.loads(data[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    base, at, out = 8 + n, 0, {}
    for name, e in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        assert set(e) == {"dtype", "shape", "data_offsets"}, f"{path}: {name}: keys {sorted(e)}"
        assert e["dtype"] in ("F32", "I64"), f"{path}: {name}: dtype {e['dtype']}"
        dt = "<f4" if e["dtype"] == "F32" else "<i8"
        b, end = e["data_offsets"]
        assert b == at and end - b == int(dt[2]) * int(np.prod(e["shape"], dtype=np.int64)), f"{path}: {name}: offsets"
        at = end
        arr = np.frombuffer(data[base + b:base + end], dtype=dt).reshape(e["shape"])
        out[name] = torch.from_numpy(arr.copy())
    assert base + at == len(data), f"{path}: data not fully covered"
    return out, meta


def st_write(path, tensors, meta):
    header, blobs, off = {"__metadata__": meta}, [], 0
    for name in sorted(tensors):
        b = tensors[name].detach().to(torch.float32).contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def module(meta):
    mode = meta["mode"]
    kw = dict(input_size=int(meta["input_size"]), hidden_size=int(meta["hidden_size"]),
              num_layers=int(meta["num_layers"]), bidirectional=bool(int(meta["bidirectional"])))
    if mode == "LSTM":
        return torch.nn.LSTM(proj_size=int(meta["proj_size"]), **kw)
    if mode == "GRU":
        return torch.nn.GRU(**kw)
    return torch.nn.RNN(nonlinearity="relu" if mode == "RNN_RELU" else "tanh", **kw)


def run(m, meta, x):
    """Output [T*B, D*O] and final states [L*D*B, .] as spool's io file stores them."""
    T, B = int(meta["T"]), int(meta["B"])
    with torch.no_grad():
        y, st = m(x.reshape(T, B, -1))
    h, c = st if isinstance(st, tuple) else (st, None)
    res = {"output": y.reshape(T * B, -1), "h_n": h.reshape(-1, h.shape[-1])}
    if c is not None:
        res["c_n"] = c.reshape(-1, c.shape[-1])
    return res


def torch_optim(meta, params):
    g = {k[len("spool.optim."):]: v for k, v in meta.items() if k.startswith("spool.optim.")}
    f = {k: float(v) for k, v in g.items() if k != "kind"}
    kind, lr, wd = g["kind"], f["lr"], f["weight_decay"]
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=f["momentum"], dampening=f["dampening"],
                               weight_decay=wd, nesterov=bool(f["nesterov"]))
    if kind == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=f["alpha"], eps=f["eps"], weight_decay=wd,
                                   momentum=f["momentum"], centered=bool(f["centered"]))
    if kind == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, lr_decay=f["lr_decay"], weight_decay=wd,
                                   initial_accumulator_value=f["initial_accumulator_value"], eps=f["eps"])
    cls = torch.optim.Adam if kind == "adam" else torch.optim.AdamW
    return cls(params, lr=lr, betas=(f["beta1"], f["beta2"]), eps=f["eps"], weight_decay=wd,
               amsgrad=bool(f["amsgrad"]))


def check_optimizers(exe, work):
    subprocess.run([exe, "optim", work], check=True)
    ok, k = True, 0
    while os.path.exists(os.path.join(work, f"optim_{k}_final.safetensors")):
        init, _ = st_read(os.path.join(work, f"optim_{k}_init.safetensors"))
        grads, _ = st_read(os.path.join(work, f"optim_{k}_grads.safetensors"))
        final, meta = st_read(os.path.join(work, f"optim_{k}_final.safetensors"))
        names = sorted(init)
        params = [torch.nn.Parameter(init[n].clone()) for n in names]
        opt = torch_optim(meta, params)
        lrs = [float(x) for x in meta["lrs"].split(",")]
        for s, lr in enumerate(lrs):
            for n, p in zip(names, params):
                p.grad = grads[f"s{s}.{n}"].clone()
            for group in opt.param_groups:
                group["lr"] = lr
            opt.step()
        kind = meta["spool.optim.kind"]
        diff, nstate = 0.0, 0
        for n, p in zip(names, params):
            diff = max(diff, (p.detach() - final[n]).abs().max().item())
            for key, v in opt.state[p].items():
                if key == "step":
                    ok &= int(v) == int(final["optim.step"].reshape(-1)[0]) == len(lrs)
                    continue
                diff = max(diff, (v - final[f"optim.{kind}.{key}.{n}"]).abs().max().item())
                nstate += 1
        expected = sum(1 for t in final if t.startswith("optim.") and t != "optim.step")
        good = diff <= TOL and nstate == expected
        ok &= good
        print(f"torch.optim   {kind:8s} config {k}: {len(lrs)} steps, {nstate} state tensors, max |diff| "
              f"{diff:.3g}  {'ok' if good else 'MISMATCH'}", flush=True)
        k += 1
    return ok and k >= 5


def main():
    if len(sys.argv) != 3 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0 if len(sys.argv) == 2 else 2
    exe, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    torch.manual_seed(0)
    ok = True

    subprocess.run([exe, "save", work], check=True)
    names = sorted(f[len("spool_"):-len(".safetensors")] for f in os.listdir(work)
                   if f.startswith("spool_") and f.endswith(".safetensors") and not f.endswith("_io.safetensors"))
    assert {"lstm", "gru", "rnn"} <= set(names), names
    for name in names:
        sd, meta = st_read(os.path.join(work, f"spool_{name}.safetensors"))
        io, _ = st_read(os.path.join(work, f"spool_{name}_io.safetensors"))
        m = module(meta).double()
        m.load_state_dict({k: v.double() for k, v in sd.items()}, strict=True)
        got = run(m, meta, io["input"].double())
        diffs = {k: (got[k] - io[k].double()).abs().max().item() for k in got}
        good = set(got) == set(io) - {"input"} and all(d <= TOL for d in diffs.values())
        ok &= good
        print(f"spool -> torch {name:9s} max |diff| " + "  ".join(f"{k} {v:.3g}" for k, v in diffs.items()) +
              ("  ok" if good else "  MISMATCH"), flush=True)

        # The other way: a module with torch's own init, its state_dict as it comes.
        t = module(meta)
        x = torch.rand(int(meta["T"]) * int(meta["B"]), int(meta["input_size"])) * 2 - 1
        ref = run(t.double(), meta, x.double())
        t = t.float()
        st_write(os.path.join(work, f"torch_{name}.safetensors"), t.state_dict(), meta)
        st_write(os.path.join(work, f"torch_{name}_io.safetensors"), dict(input=x, **ref), meta)
        r = subprocess.run([exe, "check", work, name])
        ok &= r.returncode == 0

    ok &= check_optimizers(exe, work)
    print("interop: " + ("all models and optimizers agree" if ok else "MISMATCH"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
