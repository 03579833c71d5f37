#!/usr/bin/env python3
"""forward_ref: an independent forward pass of gatelab's model (DESIGN §2-3)
in Python 3's standard library only, in float64, to check gatelab's loss.

It shares no code with gatelab: the checkpoint is read with tests/st_reader.py
(json + struct) and the model is written from the design, not from src/:
GPT-2 style, pre-LayerNorm (eps 1e-5), learned positions, tanh-form GELU,
attention scale 1/sqrt(head_dim), causal, tied LM head, mean next-token
cross-entropy. Gate modes with a deterministic mask are supported:

    dense    z = c
    oracle   z = c on the k largest c of the row (ties: the earlier key)
    topk     z = c on the k largest s of the row (ties: the earlier key)
    soft     z = c + log sigmoid((s - tau) / (t * sigma)), tau the midpoint of
             the k-th and (k+1)-th largest s, sigma the population std of the
             row's s plus 1e-6; rows with n <= k keep every key
    sigmoid  z = c + log sigmoid(s)

with s_ij = (xn_i Gq_h^T) . (xn_j Gk_h^T) / sqrt(r) + b_h, xn = LN1(x).

The data file is cut the way `gatelab eval CKPT --data FILE` cuts it:
consecutive windows of T+1 bytes, window w = bytes w*T .. w*T+T, inputs its
first T, targets its last T, a final partial window dropped.

    python3 tests/forward_ref.py CKPT DATA [--gate MODE] [--k K]
        [--expect LOSS [--tol 1e-5]] [--ln-eps E] [--gelu-coef C]

Prints "loss L margin M" (M: the smallest gap, relative to the row's scale,
between the k-th and (k+1)-th largest value a hard mask chose from; a gap near
float32 rounding would make the choice ambiguous: below --min-margin, 1e-4,
it exits 1). With --expect, exits 1 when |L - LOSS| > tol (absolute). --ln-eps and --gelu-coef change the reference's
constants, so a test can show that a wrong constant is caught.
    python3 tests/forward_ref.py --rewrite SRC OUT [--seed S]

copies checkpoint SRC to OUT with every weight redrawn at scales where each
part of the network moves the loss (scale_of), metadata unchanged.
Exit status: 0 ok, 1 mismatch or unreadable input, 2 usage error.
"""
import argparse
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_reader  # noqa: E402  (the stdlib safetensors parser beside this file)

GELU_SCALE = math.sqrt(2.0 / math.pi)
MODES = ("dense", "oracle", "topk", "soft", "sigmoid")


def load(path):
    with open(path, "rb") as f:
        blob = f.read()
    _, meta, tensors, data = st_reader.parse(blob)
    w = {}
    for name, shape, begin, end in tensors:
        vals = [float(v) for v in st_reader.floats(data[begin:end])]
        if len(shape) == 2:
            rows, cols = shape
            w[name] = [vals[i * cols:(i + 1) * cols] for i in range(rows)]
        else:
            w[name] = vals
    return meta, w


def layernorm(x, weight, bias, eps):
    n = len(x)
    m = sum(x) / n
    v = sum((xi - m) ** 2 for xi in x) / n
    s = 1.0 / math.sqrt(v + eps)
    return [(xi - m) * s * wi + bi for xi, wi, bi in zip(x, weight, bias)]


def linear(x, weight, bias=None):
    """y = x W^T + b, W [out][in] (nn.Linear's convention)."""
    y = [sum(wi * xi for wi, xi in zip(row, x)) for row in weight]
    if bias is not None:
        y = [yi + bi for yi, bi in zip(y, bias)]
    return y


def gelu(x, coef):
    return 0.5 * x * (1.0 + math.tanh(GELU_SCALE * (x + coef * x * x * x)))


def log_sigmoid(u):
    return -math.log1p(math.exp(-u)) if u >= 0 else u - math.log1p(math.exp(u))


def top_order(vals):
    """Indices by value, largest first, the earlier index first on ties."""
    return sorted(range(len(vals)), key=lambda j: (-vals[j], j))


def boundary_gap(vals, order, k):
    """Gap between the k-th and (k+1)-th largest, relative to the row's spread."""
    spread = max(vals) - min(vals)
    return (vals[order[k - 1]] - vals[order[k]]) / spread if spread > 0 else 0.0


class Result:
    def __init__(self):
        self.margin = math.inf


def attention_row(c, s, mode, k, temp, res):
    """One query row: content logits c[n], gate scores s[n] (or None) -> p[n]."""
    n = len(c)
    z = list(c)
    keep = [True] * n
    if n > k and mode in ("oracle", "topk"):
        x = c if mode == "oracle" else s
        order = top_order(x)
        res.margin = min(res.margin, boundary_gap(x, order, k))
        keep = [False] * n
        for j in order[:k]:
            keep[j] = True
    elif mode == "soft" and n > k:
        order = top_order(s)
        tau = 0.5 * (s[order[k - 1]] + s[order[k]])
        mean = sum(s) / n
        sigma = math.sqrt(sum((sj - mean) ** 2 for sj in s) / n) + 1e-6
        z = [zj + log_sigmoid((sj - tau) / (temp * sigma)) for zj, sj in zip(z, s)]
    elif mode == "sigmoid":
        z = [zj + log_sigmoid(sj) for zj, sj in zip(z, s)]
    mx = max(zj for zj, kj in zip(z, keep) if kj)
    e = [math.exp(zj - mx) if kj else 0.0 for zj, kj in zip(z, keep)]
    tot = sum(e)
    return [ej / tot for ej in e]


def forward(meta, w, tokens, mode, k, eps, coef, res):
    """Sum of the cross-entropies of one window's T next-token predictions."""
    T, d, H, L = (int(meta[x]) for x in ("T", "d", "heads", "layers"))
    r = int(meta["r"])
    temp = float(meta["gate_temp"])
    hd = d // H
    inputs, targets = tokens[:T], tokens[1:T + 1]
    x = [[a + b for a, b in zip(w["wte"][t], w["wpe"][i])] for i, t in enumerate(inputs)]
    gated = mode in ("topk", "soft", "sigmoid")
    for layer in range(L):
        p = "h.%d." % layer
        xn = [layernorm(xi, w[p + "ln1.weight"], w[p + "ln1.bias"], eps) for xi in x]
        qkv = [linear(xi, w[p + "attn.qkv.weight"], w[p + "attn.qkv.bias"]) for xi in xn]
        if gated:
            gq = [linear(xi, w[p + "gate.q.weight"]) for xi in xn]
            gk = [linear(xi, w[p + "gate.k.weight"]) for xi in xn]
        y = [[0.0] * d for _ in range(T)]
        for h in range(H):
            q = [row[h * hd:(h + 1) * hd] for row in qkv]
            kk = [row[d + h * hd:d + (h + 1) * hd] for row in qkv]
            v = [row[2 * d + h * hd:2 * d + (h + 1) * hd] for row in qkv]
            for i in range(T):
                c = [sum(a * b for a, b in zip(q[i], kk[j])) / math.sqrt(hd)
                     for j in range(i + 1)]
                s = None
                if gated:
                    gqi = gq[i][h * r:(h + 1) * r]
                    s = [sum(a * b for a, b in zip(gqi, gk[j][h * r:(h + 1) * r])) / math.sqrt(r)
                         + w[p + "gate.bias"][h] for j in range(i + 1)]
                pr = attention_row(c, s, mode, k, temp, res)
                for e in range(hd):
                    y[i][h * hd + e] = sum(pr[j] * v[j][e] for j in range(i + 1))
        x = [[a + b for a, b in zip(xi, linear(yi, w[p + "attn.proj.weight"],
                                                w[p + "attn.proj.bias"]))]
             for xi, yi in zip(x, y)]
        xn = [layernorm(xi, w[p + "ln2.weight"], w[p + "ln2.bias"], eps) for xi in x]
        hid = [[gelu(u, coef) for u in linear(xi, w[p + "mlp.fc.weight"], w[p + "mlp.fc.bias"])]
               for xi in xn]
        x = [[a + b for a, b in zip(xi, linear(hi, w[p + "mlp.proj.weight"],
                                                w[p + "mlp.proj.bias"]))]
             for xi, hi in zip(x, hid)]
    total = 0.0
    for xi, tgt in zip(x, targets):
        logits = linear(layernorm(xi, w["lnf.weight"], w["lnf.bias"], eps), w["wte"])
        mx = max(logits)
        lse = mx + math.log(sum(math.exp(z - mx) for z in logits))
        total += lse - logits[tgt]
    return total


def scale_of(name, shape):
    """(mean, std) of a rewritten tensor: every part of the network matters.
    The embeddings are small (std 0.003, so LN1's input variance is about
    2e-5 and eps 1e-5 moves it by a third) and lnf.weight large (so the
    tied head's logits still spread over a few units); the linears keep
    their outputs O(1) (GELU's cubic term and the attention logits count);
    norms and biases are far from 1 and 0."""
    fan_in = shape[1] if len(shape) == 2 else 1
    if name in ("wte", "wpe"):
        return 0.0, 0.003
    if name == "lnf.weight":
        return 150.0, 40.0
    if name.endswith("ln1.weight") or name.endswith("ln2.weight"):
        return 1.0, 0.3
    if name.endswith(".bias"):
        return 0.0, 0.3
    if name.endswith("mlp.fc.weight"):
        return 0.0, 2.5 / math.sqrt(fan_in)
    if name.endswith("attn.qkv.weight") or name.endswith("mlp.proj.weight"):
        return 0.0, 1.5 / math.sqrt(fan_in)
    if name.endswith("gate.q.weight") or name.endswith("gate.k.weight"):
        return 0.0, 1.5 / math.sqrt(fan_in)
    return 0.0, 0.5 / math.sqrt(fan_in)


def rewrite(src, out, seed):
    """Copies checkpoint SRC to OUT with every tensor's values redrawn from a
    seeded N(mean, std) of scale_of (the header, names and metadata kept)."""
    import random
    import struct
    with open(src, "rb") as f:
        blob = f.read()
    n, meta, tensors, data = st_reader.parse(blob)
    rng = random.Random(seed)
    body = bytearray(data)
    for name, shape, begin, end in sorted(tensors):
        mean, std = scale_of(name, shape)
        vals = [rng.gauss(mean, std) for _ in range((end - begin) // 4)]
        body[begin:end] = struct.pack("<%df" % len(vals), *vals)
    with open(out, "wb") as f:
        f.write(blob[:8 + n] + bytes(body))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--rewrite":
        ap = argparse.ArgumentParser(description="redraw a checkpoint's weights")
        ap.add_argument("--rewrite", nargs=2, metavar=("SRC", "OUT"), required=True)
        ap.add_argument("--seed", type=int, default=1)
        args = ap.parse_args()
        try:
            rewrite(args.rewrite[0], args.rewrite[1], args.seed)
        except (OSError, st_reader.Invalid) as e:
            print("forward_ref: %s" % e, file=sys.stderr)
            return 1
        return 0
    ap = argparse.ArgumentParser(description="independent float64 forward of gatelab's model")
    ap.add_argument("ckpt")
    ap.add_argument("data")
    ap.add_argument("--gate", choices=MODES, help="gate mode (default: the checkpoint's)")
    ap.add_argument("--k", type=int, help="keys kept per query (default: the checkpoint's)")
    ap.add_argument("--expect", type=float, help="gatelab's loss, to compare with")
    ap.add_argument("--tol", type=float, default=1e-5, help="absolute tolerance (1e-5)")
    ap.add_argument("--min-margin", type=float, default=1e-4,
                    help="fail when a hard mask's choice is this close to a tie (1e-4)")
    ap.add_argument("--ln-eps", type=float, default=1e-5)
    ap.add_argument("--gelu-coef", type=float, default=0.044715)
    args = ap.parse_args()
    try:
        meta, w = load(args.ckpt)
        with open(args.data, "rb") as f:
            data = f.read()
    except (OSError, st_reader.Invalid) as e:
        print("forward_ref: %s" % e, file=sys.stderr)
        return 1
    if "experts" in meta:
        print("forward_ref: mixture-of-experts checkpoints are not covered", file=sys.stderr)
        return 1
    mode = args.gate or meta["gate_mode"]
    if mode not in MODES:
        print("forward_ref: gate mode %s is not deterministic here" % mode, file=sys.stderr)
        return 2
    k = args.k if args.k else int(meta["k"])
    T, V = int(meta["T"]), int(meta["V"])
    windows = (len(data) - 1) // T
    if windows < 1 or max(data) >= V:
        print("forward_ref: %s: need T+1 bytes below V" % args.data, file=sys.stderr)
        return 1
    res = Result()
    total = 0.0
    for wi in range(windows):
        total += forward(meta, w, list(data[wi * T:wi * T + T + 1]), mode, k,
                         args.ln_eps, args.gelu_coef, res)
    loss = total / (windows * T)
    print("loss %.9f margin %.3g" % (loss, res.margin))
    if res.margin < args.min_margin:
        print("forward_ref: a top-k boundary gap of %.3g (relative) is too close to a tie "
              "for float32 and float64 to choose alike: use other weights" % res.margin,
              file=sys.stderr)
        return 1
    if args.expect is not None and not abs(loss - args.expect) <= args.tol:
        print("forward_ref: loss %.9f, gatelab %.9f: differ by %.3g > %g"
              % (loss, args.expect, abs(loss - args.expect), args.tol), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
