"""Write small routing dumps the way each engine writes them, plus the counts they must import to.

usage: /usr/bin/python3 scripts/make-import-fixtures.py   (Debian's python3 with torch + numpy)
Writes test/fixtures/import-{olmoe,vllm,megatron,csv,hf}/ ... and expected.json in each: counts per
"layer/expert/modality" (all k choices, and top-1 = the highest router probability), tokens per
modality, rows, computed here from the ground-truth router probabilities with plain loops.
"""
import base64
import json
import os
import sys

import numpy as np
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "python"))
from moescope_capture import save_safetensors  # noqa: E402

IMG = 9  # the image-patch token id in these fixtures
rng = np.random.default_rng(7)


def out_dir(name):
    d = os.path.join(ROOT, "test", "fixtures", f"import-{name}")
    os.makedirs(d, exist_ok=True)
    return d


def softmax(x):
    x = x.astype(np.float64)
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def topk_desc(p, k):
    """indices of the k largest, descending, ties to the lower index (stable sort of -p)."""
    return np.argsort(-p, kind="stable")[:k]


class Expected:
    def __init__(self):
        self.all, self.top1, self.tokens, self.rows, self.extra = {}, {}, {}, 0, {}

    def add(self, layer, chosen, top, mod):
        self.rows += 1
        for e in chosen:
            k = f"{layer}/{int(e)}/{mod}"
            self.all[k] = self.all.get(k, 0) + 1
        k = f"{layer}/{int(top)}/{mod}"
        self.top1[k] = self.top1.get(k, 0) + 1

    def token(self, mod):
        self.tokens[mod] = self.tokens.get(mod, 0) + 1

    def save(self, d):
        with open(os.path.join(d, "expected.json"), "w") as f:
            json.dump({"all": self.all, "top1": self.top1, "tokens": self.tokens, "rows": self.rows, **self.extra}, f, indent=1, sort_keys=True)


def token_ids(n, img_runs=()):
    ids = rng.integers(20, 100, n).tolist()
    for a, b in img_runs:
        ids[a:b] = [IMG] * (b - a)
    return ids


def olmoe():
    """OLMoE scripts/run_moe_analysis.py: exp_ids = np.stack([np.argsort(-logits, -1)[:, :K].tolist() ...], -1)."""
    d = out_dir("olmoe")
    E, K, L, T = 8, 2, 3, 10
    ex = Expected()
    with open(os.path.join(d, "c4_results.jsonl"), "w") as f:
        for w in range(2):
            input_ids = token_ids(T, [(3, 7)] if w == 0 else [])
            router_logits = [rng.normal(size=(T, E)).astype(np.float32) for _ in range(L)]
            exp_ids = np.stack([np.argsort(-logits, -1)[:, :K].tolist() for logits in router_logits], -1).tolist()
            predicted = rng.integers(0, 100, T).tolist()
            f.write(json.dumps({"input_ids": input_ids, "predicted_token_ids": predicted, "exp_ids": exp_ids}) + "\n")
            for t in range(T):
                mod = "image" if input_ids[t] == IMG else "text"
                ex.token(mod)
                for l in range(L):
                    p = softmax(router_logits[l][t])
                    ex.add(l, topk_desc(p, K), int(np.argmax(p)), mod)
    ex.save(d)


def vllm():
    """vLLM --enable-return-routed-experts: routed_experts [tokens, layers, top_k] int16 over prompt + output
    (the last generated token never ran); dense layers are all-zero slices."""
    d = out_dir("vllm")
    E, K, NL = 8, 2, 4  # decoder layers 0..3; layer 0 is dense
    ex = Expected()
    ex.extra["phase"] = {"prefill": 0, "decode": 0}
    with open(os.path.join(d, "requests.jsonl"), "w") as f:
        for r, (P, O, as_b64) in enumerate([(6, 4, True), (5, 3, False)]):
            prompt = token_ids(P, [(1, 4)] if r == 0 else [])
            output = token_ids(O)
            T = P + O - 1
            routed = np.zeros((T, NL, K), dtype=np.int16)
            for t in range(T):
                mod = "image" if (prompt + output)[t] == IMG else "text"
                ex.token(mod)
                for l in range(1, NL):
                    p = softmax(rng.normal(size=E))
                    chosen = topk_desc(p, K)
                    routed[t, l] = chosen
                    ex.add(l, chosen, chosen[0], mod)
                    ex.extra["phase"]["prefill" if t < P else "decode"] += 1
            if as_b64:
                re = {"dtype": "int16", "shape": list(routed.shape), "data": base64.b64encode(routed.tobytes()).decode()}
                rec = {"request_id": f"req-{r}", "prompt": "a prompt", "prompt_token_ids": prompt,
                       "outputs": [{"text": "generated", "token_ids": output, "routed_experts": re}]}
            else:
                rec = {"request_id": f"req-{r}", "prompt_token_ids": prompt, "output_token_ids": output, "routed_experts": routed.tolist()}
            f.write(json.dumps(rec) + "\n")
    ex.save(d)


def to_bf16(x):
    t = torch.tensor(x, dtype=torch.float32).to(torch.bfloat16)
    return t, t.float().numpy()


def megatron():
    """Megatron-LM RouterTracer: router_trace_rank0.jsonl, one record per (forward, MoE layer), tokens in
    [seq, batch] order; top_indices from routing_map.nonzero() (ascending expert id, not by gate);
    logits_rank0.bin bfloat16 with logit_offset/logit_bytes/logit_shape."""
    d = out_dir("megatron")
    E, K, B, S = 8, 2, 2, 5
    layers = [1, 2]  # decoder layer 0 is dense: no router, no records
    ex = Expected()
    side = []
    mods = {}
    offset = 0
    with open(os.path.join(d, "router_trace_rank0.jsonl"), "w") as f, open(os.path.join(d, "logits_rank0.bin"), "wb") as lb:
        for step in range(2):
            for b in range(B):
                m = "".join("i" if (step + b) % 2 == 0 and 1 <= s <= 3 else "t" for s in range(S))
                mods[(step, b)] = m
                side.append(m)
                for c in m:
                    ex.token("image" if c == "i" else "text")
            for layer in layers:
                logits = rng.normal(size=(S * B, E)).astype(np.float32)
                bt, logits_bf = to_bf16(logits)
                raw = bt.view(torch.int16).numpy().tobytes()
                lb.write(raw)
                top = []
                for tok in range(S * B):
                    s, b = tok // B, tok % B
                    p = softmax(logits_bf[tok])
                    chosen = topk_desc(p, K)
                    routing_map = np.zeros(E, dtype=bool)
                    routing_map[chosen] = True
                    top.append(np.nonzero(routing_map)[0].tolist())
                    mod = "image" if mods[(step, b)][s] == "i" else "text"
                    ex.add(layer, chosen, chosen[0], mod)
                rec = {"step": step, "stage": "pre_dispatch", "block": "decoder", "layer": layer, "rank": 0,
                       "num_tokens": S * B, "topk": K, "logit_offset": offset, "logit_bytes": len(raw),
                       "logit_shape": [S * B, E], "top_indices": top}
                offset += len(raw)
                f.write(json.dumps(rec) + "\n")
    with open(os.path.join(d, "modality.jsonl"), "w") as f:
        for m in side:
            f.write(json.dumps(m) + "\n")
    ex.save(d)


def csv():
    """llama.cpp eval-callback trace of ffn_moe_topk-N (ids) and the gate weights, one row per token per
    layer, per ubatch: a 6-token prompt, then 3 single-token decode steps; weights listed by expert id."""
    d = out_dir("csv")
    E, K, L = 8, 2, 3
    ex = Expected()
    ids = token_ids(9, [(2, 5)])
    for t in ids:
        ex.token("image" if t == IMG else "text")
    rows = ["layer,token_id,expert_ids,weights"]
    ubatches = [list(range(0, 6)), [6], [7], [8]]
    for ub in ubatches:
        for l in range(L):
            for t in ub:
                p = softmax(rng.normal(size=E))
                chosen = topk_desc(p, K)
                w = p[chosen] / p[chosen].sum()
                order = np.argsort(chosen)
                rows.append(f'ffn_moe_topk-{l},{ids[t]},"{" ".join(str(int(chosen[i])) for i in order)}","{" ".join(f"{w[i]:.6f}" for i in order)}"')
                ex.add(l, chosen, chosen[0], "image" if ids[t] == IMG else "text")
    with open(os.path.join(d, "moe_trace.csv"), "w") as f:
        f.write("\n".join(rows) + "\n")
    ex.save(d)


def hf_llava():
    """MoE-LLaVA style, saved by hand from output_router_logits: input_ids keep one -200 per image, the
    router saw 6 patch rows for it; router_logits.{moe ordinal} (MoE every other layer: decoder 1, 3)."""
    d = out_dir("hf")
    E, K, P = 4, 1, 6
    ids = [1, 30, 31, -200, 32, 33, 34, 2]
    rows = []
    for t in ids:
        rows.extend(["image"] * P if t == -200 else ["special" if t in (1, 2) else "text"])
    ex = Expected()
    for m in rows:
        ex.token(m)
    logits = {}
    for o, layer in enumerate([1, 3]):
        lg = rng.normal(size=(len(rows), E)).astype(np.float32)
        logits[o] = lg
        for t, m in enumerate(rows):
            p = softmax(lg[t])
            chosen = topk_desc(p, K)
            ex.add(layer, chosen, chosen[0], m)
    base = {"input_ids": np.array([ids], dtype=np.int64), "attention_mask": np.ones((1, len(ids)), dtype=np.int64)}
    save_safetensors(os.path.join(d, "llava_logits.safetensors"), {**base, **{f"router_logits.{o}": lg for o, lg in logits.items()}})
    save_safetensors(os.path.join(d, "llava_probs.safetensors"), {**base, **{f"router_logits.{o}": softmax(lg).astype(np.float32) for o, lg in logits.items()}})
    ex.save(d)


if __name__ == "__main__":
    olmoe()
    vllm()
    megatron()
    csv()
    hf_llava()
    print("wrote test/fixtures/import-*")
