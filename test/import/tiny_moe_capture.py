"""A tiny torch MoE (no downloads) captured with python/moescope_capture.py, for test/import/python-capture.test.ts.

usage: /usr/bin/python3 tiny_moe_capture.py OUT_DIR [safetensors|npy]
Writes OUT_DIR/capture (what `moescope import hf` reads) and OUT_DIR/expected.json: counts per
(decoder layer, expert, modality) taken from the model's own routing decisions, recorded inside
its MoE blocks, independently of the capture hooks.
"""
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
from moescope_capture import RoutingCapture  # noqa: E402

PAD, BOS, IMG_BEGIN, IMG_END, IMG = 0, 1, 3, 4, 5
V, D, E, K = 40, 16, 6, 2


class Config(dict):
    def to_dict(self):
        return dict(self)


class Expert(nn.Module):
    def __init__(self):
        super().__init__()
        self.w1 = nn.Linear(D, 24, bias=False)
        self.w2 = nn.Linear(24, D, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)))


class SoftmaxMoE(nn.Module):
    """Mixtral style: gate is a Linear returning logits; softmax, top-k, renormalised."""

    def __init__(self):
        super().__init__()
        self.gate = nn.Linear(D, E, bias=False)
        self.experts = nn.ModuleList(Expert() for _ in range(E))

    def forward(self, h):
        b, s, d = h.shape
        x = h.reshape(-1, d)
        probs = F.softmax(self.gate(x), dim=-1, dtype=torch.float32)
        w, idx = torch.topk(probs, K, dim=-1)
        w = w / w.sum(-1, keepdim=True)
        self.last = (idx.clone(), w.clone())
        out = torch.zeros_like(x)
        for j in range(K):
            for e in range(E):
                m = idx[:, j] == e
                if m.any():
                    out[m] += w[m, j, None] * self.experts[e](x[m])
        return out.reshape(b, s, d)


class DeepSeekGate(nn.Module):
    """DeepSeek-V3 style: sigmoid scores + a selection bias; returns (ids, weights) only, ids in
    ascending id order (as some fused kernels do), not by weight."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(E, D) * 0.5)
        self.bias = nn.Parameter(torch.randn(E) * 0.3)

    def forward(self, h):
        x = h.reshape(-1, h.shape[-1])
        scores = torch.sigmoid(x @ self.weight.t())
        _, idx = torch.topk(scores + self.bias, K, dim=-1)
        w = scores.gather(1, idx)
        w = w / w.sum(-1, keepdim=True)
        order = torch.argsort(idx, dim=-1)
        return idx.gather(1, order), w.gather(1, order)


class DeepSeekMoE(nn.Module):
    def __init__(self):
        super().__init__()
        self.gate = DeepSeekGate()
        self.experts = nn.ModuleList(Expert() for _ in range(E))

    def forward(self, h):
        b, s, d = h.shape
        x = h.reshape(-1, d)
        idx, w = self.gate(h)
        self.last = (idx.clone(), w.clone())
        out = torch.zeros_like(x)
        for j in range(K):
            for e in range(E):
                m = idx[:, j] == e
                if m.any():
                    out[m] += w[m, j, None] * self.experts[e](x[m])
        return out.reshape(b, s, d)


class Dense(nn.Module):
    def __init__(self):
        super().__init__()
        self.up = nn.Linear(D, 24)
        self.down = nn.Linear(24, D)

    def forward(self, h):
        return self.down(F.silu(self.up(h)))


class Layer(nn.Module):
    def __init__(self, mlp):
        super().__init__()
        self.attn = nn.Linear(D, D)
        self.mlp = mlp

    def forward(self, h):
        h = h + torch.tanh(self.attn(h))
        return h + self.mlp(h)


class TinyModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed_tokens = nn.Embedding(V, D)
        # decoder layers 0 and 2 are dense, 1 and 4 Mixtral-style, 3 DeepSeek-style
        self.layers = nn.ModuleList([Layer(Dense()), Layer(SoftmaxMoE()), Layer(Dense()), Layer(DeepSeekMoE()), Layer(SoftmaxMoE())])


class TinyForCausalLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.config = Config(model_type="tiny_moe", num_hidden_layers=5, num_local_experts=E, num_experts_per_tok=K,
                             norm_topk_prob=True, mlp_only_layers=[0, 2])
        self.model = TinyModel()

    def forward(self, input_ids, attention_mask=None):
        h = self.model.embed_tokens(input_ids)
        for layer in self.model.layers:
            h = layer(h)
        return h


def modality(tok):
    if tok in (BOS, IMG_BEGIN, IMG_END):
        return "special"
    return "image" if tok == IMG else "text"


def main():
    out = sys.argv[1]
    fmt = sys.argv[2] if len(sys.argv) > 2 else "safetensors"
    torch.manual_seed(0)
    model = TinyForCausalLM().eval()
    g = torch.Generator().manual_seed(1)

    def seq(n_text, n_img, n_text2):
        t = lambda n: torch.randint(6, V, (n,), generator=g).tolist()  # noqa: E731
        return [BOS] + t(n_text) + [IMG_BEGIN] + [IMG] * n_img + [IMG_END] + t(n_text2)

    batches = [[seq(3, 4, 2), seq(2, 3, 1)], [seq(4, 6, 5)]]
    expected = {"all": {}, "top1": {}, "tokens": {}, "rows": 0, "samples": 0}
    moe_layers = {i: l.mlp for i, l in enumerate(model.model.layers) if hasattr(l.mlp, "gate")}
    with RoutingCapture(model, os.path.join(out, "capture"), fmt=fmt, special_ids=[BOS, PAD], family="generic",
                        image_token_id=IMG, image_special_ids=[IMG_BEGIN, IMG_END]) as cap:
        for bi, seqs in enumerate(batches):
            S = max(len(s) for s in seqs)
            ids = torch.full((len(seqs), S), PAD, dtype=torch.long)
            mask = torch.zeros((len(seqs), S), dtype=torch.long)
            for i, s in enumerate(seqs):
                ids[i, : len(s)] = torch.tensor(s)
                mask[i, : len(s)] = 1
            cap.inputs(ids, attention_mask=mask, texts=[f"batch {bi} seq {i}" for i in range(len(seqs))])
            with torch.no_grad():
                model(ids, attention_mask=mask)
            flat_ids = ids.reshape(-1).tolist()
            flat_mask = mask.reshape(-1).tolist()
            for tok, m in zip(flat_ids, flat_mask):
                if m:
                    md = modality(tok)
                    expected["tokens"][md] = expected["tokens"].get(md, 0) + 1
            expected["samples"] += len(seqs)
            for layer, block in moe_layers.items():
                idx, w = block.last
                for t, (tok, m) in enumerate(zip(flat_ids, flat_mask)):
                    if not m:
                        continue
                    md = modality(tok)
                    expected["rows"] += 1
                    top = int(idx[t, int(torch.argmax(w[t]))])
                    key = f"{layer}/{top}/{md}"
                    expected["top1"][key] = expected["top1"].get(key, 0) + 1
                    for j in range(K):
                        key = f"{layer}/{int(idx[t, j])}/{md}"
                        expected["all"][key] = expected["all"].get(key, 0) + 1
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
