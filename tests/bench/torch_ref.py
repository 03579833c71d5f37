"""torch_ref: the peer gatelab's bench measures itself against — the same
GPT-2-style model (DESIGN.md section 2), the same gates (section 3: dense,
soft top-k, hard top-k), the same AdamW (betas 0.9/0.95, eps 1e-8, weight
decay 0.1 on matrices and embeddings only, global grad-norm clip 1.0) and the
same batch, trained in PyTorch on random tokens. bench_train passes every
shape from gatelab's own presets on the command line, so the two cannot
drift apart, runs this script once per thread count and keeps the best.

Prints one line: "torch <mode> threads <n> steps <s> tokens/s <x> loss <l>
params <p> version <v>"; bench_train checks p against gatelab's own count.
Not a test dependency: only `make bench` runs it, where python3-torch is
installed (`make bench-deps`).

usage: torch_ref.py --mode dense|soft|topk --V 256 --T 128 --d 128 --layers 4
       --heads 4 --mlp 512 --r 8 --k 16 --gate-temp 0.25 --batch 16
       --threads 1 --warmup 3 --timed 10
"""
import argparse
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def parse():
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["dense", "soft", "topk"], required=True)
    for name in ("V", "T", "d", "layers", "heads", "mlp", "r", "k", "batch", "threads",
                 "warmup", "timed"):
        p.add_argument("--" + name, type=int, required=True)
    p.add_argument("--gate-temp", type=float, default=0.25)
    return p.parse_args()


class Block(nn.Module):
    def __init__(self, a):
        super().__init__()
        d, H, r = a.d, a.heads, a.r
        self.H, self.r, self.k, self.t, self.mode = H, r, a.k, a.gate_temp, a.mode
        self.ln1 = nn.LayerNorm(d, eps=1e-5)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d, eps=1e-5)
        self.fc = nn.Linear(d, a.mlp)
        self.fc_proj = nn.Linear(a.mlp, d)
        # gate.q.weight [H*r, d], gate.k.weight [H*r, d], gate.bias [H]: there
        # in every mode as in gatelab (a swap may turn them on); dense leaves
        # them without a gradient, so AdamW skips them
        self.gq = nn.Linear(d, H * r, bias=False)
        self.gk = nn.Linear(d, H * r, bias=False)
        self.gb = nn.Parameter(torch.zeros(H))

    def gate_logmask(self, xn, causal):
        """log m_ij added to the content logits ([B,H,T,T]); -inf off the mask."""
        B, T, _ = xn.shape
        H, r, k = self.H, self.r, self.k
        gq = self.gq(xn).view(B, T, H, r).transpose(1, 2)
        gk = self.gk(xn).view(B, T, H, r).transpose(1, 2)
        s = gq @ gk.transpose(-1, -2) / math.sqrt(r) + self.gb.view(1, H, 1, 1)
        s = s.masked_fill(~causal, float("-inf"))
        visible = causal.sum(-1, keepdim=True)                 # n_i, [T,1]
        if self.mode == "topk":
            idx = s.topk(k, dim=-1).indices                     # no gradient: the math says 0
            keep = torch.zeros_like(s, dtype=torch.bool).scatter_(-1, idx, True) & causal
            keep = keep | (visible <= k)                        # short rows keep every key
            return torch.zeros_like(s).masked_fill(~(keep & causal), float("-inf"))
        # soft top-k: tau = midpoint of the k-th and (k+1)-th largest visible
        # scores, sigma = population std of the visible scores + 1e-6
        top = s.topk(k + 1, dim=-1).values
        tau = 0.5 * (top[..., k - 1:k] + top[..., k:k + 1])
        zero = torch.zeros_like(s)
        sv = torch.where(causal, s, zero)
        mean = sv.sum(-1, keepdim=True) / visible
        var = torch.where(causal, (sv - mean) ** 2, zero).sum(-1, keepdim=True) / visible
        long_row = visible > k
        # a short row's variance may be 0 (one key), whose sqrt has an
        # infinite derivative: those rows keep every key, so give them 1
        sigma = torch.where(long_row, var, torch.ones_like(var)).sqrt() + 1e-6
        tau = torch.where(long_row, tau, zero[..., :1])
        u = (sv - tau) / (self.t * sigma)
        logm = F.logsigmoid(u)
        logm = torch.where(long_row, logm, zero)
        return logm.masked_fill(~causal, float("-inf"))

    def forward(self, x, causal):
        B, T, d = x.shape
        H = self.H
        xn = self.ln1(x)
        q, k, v = self.qkv(xn).split(d, dim=-1)
        q = q.view(B, T, H, d // H).transpose(1, 2)
        k = k.view(B, T, H, d // H).transpose(1, 2)
        v = v.view(B, T, H, d // H).transpose(1, 2)
        z = q @ k.transpose(-1, -2) / math.sqrt(d // H)
        if self.mode == "dense":
            z = z.masked_fill(~causal, float("-inf"))
        else:
            z = z + self.gate_logmask(xn, causal)
        y = F.softmax(z, dim=-1) @ v
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, d))
        x = x + self.fc_proj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))
        return x


class GPT(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.wte = nn.Embedding(a.V, a.d)
        self.wpe = nn.Embedding(a.T, a.d)
        self.blocks = nn.ModuleList(Block(a) for _ in range(a.layers))
        self.lnf = nn.LayerNorm(a.d, eps=1e-5)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)
        self.register_buffer("causal", torch.ones(a.T, a.T, dtype=torch.bool).tril())

    def forward(self, idx, targets):
        B, T = idx.shape
        x = self.wte(idx) + self.wpe.weight[:T]
        for b in self.blocks:
            x = b(x, self.causal[:T, :T])
        logits = self.lnf(x) @ self.wte.weight.t()          # tied LM head
        return F.cross_entropy(logits.view(B * T, -1), targets.reshape(-1))


def main():
    a = parse()
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(1)
    model = GPT(a)
    decay = [p for p in model.parameters() if p.dim() == 2]
    rest = [p for p in model.parameters() if p.dim() != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": rest, "weight_decay": 0.0}],
                            lr=3e-4, betas=(0.9, 0.95), eps=1e-8)
    gen = torch.Generator().manual_seed(2)

    def step():
        data = torch.randint(0, a.V, (a.batch, a.T + 1), generator=gen)
        loss = model(data[:, :-1], data[:, 1:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    for _ in range(a.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(a.timed):
        loss = step()
    dt = time.perf_counter() - t0
    tokens = a.timed * a.batch * a.T
    print(f"torch {a.mode} threads {a.threads} steps {a.timed} tokens/s {tokens / dt:.1f} "
          f"loss {loss:.4f} params {sum(p.numel() for p in model.parameters())} "
          f"version {torch.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
