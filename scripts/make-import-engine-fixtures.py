"""Routing dumps for the cases where a plain import would be silently wrong, written the way each
producer writes them, with the producer's own decisions as expected.json.

usage: /usr/bin/python3 scripts/make-import-engine-fixtures.py  (Debian's python3 with torch + numpy)
Writes test/fixtures/import-engines/<case>/ and, for the docs, small copies under examples/.

Each case reimplements the producer's module or output with its real names, shapes and dtypes:
- deepseek_v3: transformers 5.x src/transformers/models/deepseek_v3/modeling_deepseek_v3.py
  (DeepseekV3TopkRouter: F.linear in float32, buffer e_score_correction_bias;
  DeepseekV3MoE.route_tokens_to_experts: sigmoid, + bias for the choice, group score = sum of the
  top-2 per group, topk_group groups, masked_fill(0.0), topk(sorted=False), gather the unbiased
  scores, / (sum + 1e-20) when norm_topk_prob, * routed_scaling_factor). The user saved the gate's
  logits by hand (router_logits.{moe ordinal}) and has the checkpoint shard with the bias.
- minimax_m2: transformers src/transformers/models/minimax_m2/modeling_minimax_m2.py
  (MiniMaxM2SparseMoeBlock.route_tokens_to_experts: sigmoid + e_score_correction_bias, no groups,
  weights / sum).
- llama4: transformers src/transformers/models/llama4/modeling_llama4.py (Llama4Router returns
  (router_scores, router_logits): topk of the logits, scores = sigmoid of the chosen logits
  scattered into -inf); MoE every interleave_moe_layer_step-th layer; top-1.
- megatron_pp: Megatron-LM megatron/core/transformer/moe/router_tracer.py (RouterTracer): one
  router_trace_rank{R}.jsonl per rank, `layer` parsed from `decoder.layers.N` (local to the
  pipeline stage's model chunk), top_indices from routing_map.nonzero() (ascending id); ranks in
  the default order tp-cp-ep-dp-pp (PP outermost). And the same trace with the `layer_number`
  fallback (1-based, global), as the routing-replay inference path writes it.
- vllm_n2: vllm/outputs.py (RequestOutput.outputs: list[CompletionOutput], each with
  routed_experts [seq_len, layer_num, topk] over the prompt and that completion); n = 2.
- vllm_top1_dense: a Llama-4-Maverick-like model (top-1, MoE every other layer) through vLLM: the
  layer axis is num_hidden_layers and dense layers are all-zero slices.
- sglang: python/sglang/srt/layers/moe/routed_experts_capturer.py and the /generate response:
  meta_info.routed_experts = base64 of int32 [seqlen, num_hidden_layers, num_experts_per_tok]
  flattened (no shape), seqlen = prompt + output - 1; output_ids.
expected.json: counts per "layer/expert/modality" (all k choices; top-1 = the highest gate the
block used), tokens per modality, rows, and extra checks, computed here from the modules above.
"""
import base64
import json
import os
import struct
import sys

import numpy as np
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "python"))
from moescope_capture import save_safetensors  # noqa: E402

torch.manual_seed(0)
rng = np.random.default_rng(11)
IMG = 9


def out_dir(name, base="test/fixtures/import-engines"):
    d = os.path.join(ROOT, base, name)
    os.makedirs(d, exist_ok=True)
    return d


class Expected:
    def __init__(self):
        self.all, self.top1, self.tokens, self.rows, self.extra = {}, {}, {}, 0, {}

    def add(self, layer, chosen, gates, mod):
        """chosen/gates as the block produced them (any order); top-1 = highest gate, ties to the lower id."""
        self.rows += 1
        for e in chosen:
            k = f"{layer}/{int(e)}/{mod}"
            self.all[k] = self.all.get(k, 0) + 1
        order = sorted(range(len(chosen)), key=lambda j: (-float(gates[j]), int(chosen[j]))) if gates is not None else None
        if order is not None:
            top = int(chosen[order[0]])
            k = f"{layer}/{top}/{mod}"
            self.top1[k] = self.top1.get(k, 0) + 1

    def token(self, mod):
        self.tokens[mod] = self.tokens.get(mod, 0) + 1

    def save(self, d):
        with open(os.path.join(d, "expected.json"), "w") as f:
            json.dump({"all": self.all, "top1": self.top1, "tokens": self.tokens, "rows": self.rows, **self.extra}, f, indent=1, sort_keys=True)


def token_ids(n, img=None):
    ids = rng.integers(20, 100, n).tolist()
    if img:
        a, b = img
        ids[a:b] = [IMG] * (b - a)
    return ids


# ---------------------------------------------------------------- DeepSeek-V3 (transformers 5.x)
class DeepseekV3TopkRouter(torch.nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.n_routed_experts = config["n_routed_experts"]
        self.weight = torch.nn.Parameter(torch.randn(self.n_routed_experts, config["hidden_size"]))
        self.register_buffer("e_score_correction_bias", torch.randn(self.n_routed_experts) * 0.3)

    def forward(self, hidden_states):
        hidden_states = hidden_states.view(-1, self.config["hidden_size"])
        return torch.nn.functional.linear(hidden_states.type(torch.float32), self.weight.type(torch.float32))


class DeepseekV3MoE(torch.nn.Module):
    """Only the routing of modeling_deepseek_v3.py's DeepseekV3MoE (the experts do not change the choice)."""

    def __init__(self, config):
        super().__init__()
        self.gate = DeepseekV3TopkRouter(config)
        self.n_routed_experts = config["n_routed_experts"]
        self.n_group = config["n_group"]
        self.topk_group = config["topk_group"]
        self.norm_topk_prob = config["norm_topk_prob"]
        self.routed_scaling_factor = config["routed_scaling_factor"]
        self.top_k = config["num_experts_per_tok"]

    def route_tokens_to_experts(self, router_logits):
        router_logits = router_logits.sigmoid()
        router_logits_for_choice = router_logits + self.gate.e_score_correction_bias
        group_scores = (
            router_logits_for_choice.view(-1, self.n_group, self.n_routed_experts // self.n_group).topk(2, dim=-1)[0].sum(dim=-1)
        )
        group_idx = torch.topk(group_scores, k=self.topk_group, dim=-1, sorted=False)[1]
        group_mask = torch.zeros_like(group_scores)
        group_mask.scatter_(1, group_idx, 1)
        score_mask = (
            group_mask.unsqueeze(-1).expand(-1, self.n_group, self.n_routed_experts // self.n_group).reshape(-1, self.n_routed_experts)
        )
        scores_for_choice = router_logits_for_choice.masked_fill(~score_mask.bool(), 0.0)
        topk_indices = torch.topk(scores_for_choice, k=self.top_k, dim=-1, sorted=False)[1]
        topk_weights = router_logits.gather(1, topk_indices)
        if self.norm_topk_prob:
            denominator = topk_weights.sum(dim=-1, keepdim=True) + 1e-20
            topk_weights /= denominator
        topk_weights = topk_weights * self.routed_scaling_factor
        return topk_indices, topk_weights


class MiniMaxM2SparseMoeBlock(torch.nn.Module):
    """Only the routing of modeling_minimax_m2.py's MiniMaxM2SparseMoeBlock."""

    def __init__(self, config):
        super().__init__()
        self.top_k = config["num_experts_per_tok"]
        self.gate = torch.nn.Linear(config["hidden_size"], config["num_local_experts"], bias=False)
        self.register_buffer("e_score_correction_bias", torch.randn(config["num_local_experts"]) * 0.3)

    def route_tokens_to_experts(self, router_logits):
        routing_weights = torch.nn.functional.sigmoid(router_logits.float())
        scores_for_choice = routing_weights + self.e_score_correction_bias
        _, top_k_index = torch.topk(scores_for_choice, self.top_k, dim=-1, sorted=False)
        top_k_weights = routing_weights.gather(1, top_k_index)
        top_k_weights /= top_k_weights.sum(dim=-1, keepdim=True)
        return top_k_index, top_k_weights.to(router_logits.dtype)


def plain_topk_differs(logits, idx, k):
    """How many tokens a plain softmax top-k of the logits would route differently (must be > 0)."""
    plain = torch.topk(logits.softmax(-1), k, dim=-1)[1]
    return int(sum(set(a.tolist()) != set(b.tolist()) for a, b in zip(plain, idx)))


def biased(name, config, block_cls, bias_name):
    d = out_dir(name)
    H, L = config["hidden_size"], config["num_hidden_layers"]
    first_dense = config.get("first_k_dense_replace", 0)
    moe_layers = list(range(first_dense, L))
    blocks = {l: block_cls(config) for l in moe_layers}
    T = 24
    ids = token_ids(T, (4, 10))
    mods = ["image" if t == IMG else "text" for t in ids]
    ex = Expected()
    for m in mods:
        ex.token(m)
    tensors = {"input_ids": np.array([ids], dtype=np.int64)}
    bias = {}
    differs = 0
    gate_sum = 0.0
    with torch.no_grad():
        for o, l in enumerate(moe_layers):
            blk = blocks[l]
            h = torch.randn(T, H)
            logits = blk.gate(h) if block_cls is DeepseekV3MoE else blk.gate(h).float()
            idx, w = blk.route_tokens_to_experts(logits)
            differs += plain_topk_differs(logits, idx, config["num_experts_per_tok"])
            for t in range(T):
                ex.add(l, idx[t].tolist(), w[t].tolist(), mods[t])
                gate_sum += float(w[t].max())
            tensors[f"router_logits.{o}"] = logits.numpy().astype(np.float32)
            b = blk.gate.e_score_correction_bias if block_cls is DeepseekV3MoE else blk.e_score_correction_bias
            bias[bias_name.format(l)] = b.numpy().astype(np.float32)
    assert differs > 0, "fixture must be one where a plain top-k is wrong"
    ex.extra["plain_topk_wrong_tokens"] = differs
    ex.extra["top1_gate_sum"] = gate_sum
    ex.extra["moe_layers"] = moe_layers
    save_safetensors(os.path.join(d, "logits.safetensors"), tensors)
    save_safetensors(os.path.join(d, "model-00001-of-00001.safetensors"), bias)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    ex.save(d)


# ---------------------------------------------------------------- Llama-4
class Llama4Router(torch.nn.Linear):
    def __init__(self, config):
        super().__init__(config["hidden_size"], config["num_local_experts"], bias=False)
        self.num_experts = config["num_local_experts"]
        self.top_k = config["num_experts_per_tok"]

    def forward(self, hidden_states):
        router_logits = super().forward(hidden_states)
        router_top_value, router_indices = torch.topk(router_logits, self.top_k, dim=1)
        router_scores = torch.full_like(router_logits, float("-inf")).scatter_(1, router_indices, router_top_value)
        router_scores = torch.nn.functional.sigmoid(router_scores.float()).to(router_scores.dtype)
        return router_scores, router_logits


LLAMA4 = {"model_type": "llama4_text", "num_hidden_layers": 4, "interleave_moe_layer_step": 2, "num_local_experts": 8, "num_experts_per_tok": 1, "hidden_size": 16}


def llama4():
    d = out_dir("llama4")
    cfg = LLAMA4
    moe_layers = [l for l in range(cfg["num_hidden_layers"]) if (l + 1) % cfg["interleave_moe_layer_step"] == 0]
    T = 20
    ids = token_ids(T, (2, 8))
    mods = ["image" if t == IMG else "text" for t in ids]
    ex = Expected()
    for m in mods:
        ex.token(m)
    tensors = {"input_ids": np.array([ids], dtype=np.int64)}
    gates = []
    with torch.no_grad():
        for o, l in enumerate(moe_layers):
            r = Llama4Router(cfg)
            r.weight.mul_(3.0)
            h = torch.randn(T, cfg["hidden_size"])
            router_scores, router_logits = r(h)
            for t in range(T):
                e = int(router_scores[t].argmax())
                g = float(router_scores[t, e])
                gates.append(g)
                ex.add(l, [e], [g], mods[t])
            # output_router_logits returns the router_logits (the second value)
            tensors[f"router_logits.{o}"] = router_logits.numpy().astype(np.float32)
    ex.extra["top1_gates"] = gates
    save_safetensors(os.path.join(d, "logits.safetensors"), tensors)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    ex.save(d)


# ---------------------------------------------------------------- Megatron pipeline parallel
def megatron_pp():
    """4 decoder layers, layer 0 dense, PP=2 (stage 0: layers 0-1, stage 1: layers 2-3), DP=1, 2 ranks.
    Rank r's file names layers by its chunk's decoder.layers.N; its routing_map.nonzero() lists ids by id."""
    E, K, S, B = 8, 2, 6, 1
    stage_layers = [[0, 1], [2, 3]]
    dense = {0}
    for variant in ("stage_local", "layer_number"):
        d = out_dir(f"megatron_pp_{variant}")
        ex = Expected()
        files = {0: [], 1: []}
        side = []  # the modality side file: Megatron records carry no token ids
        for step in range(2):
            mods = ["image" if (step == 0 and 1 <= s <= 3) else "text" for s in range(S)]
            side.append("".join(m[0] for m in mods))
            for m in mods:
                ex.token(m)
            for st, layers in enumerate(stage_layers):
                for local, glob in enumerate(layers):
                    if glob in dense:
                        continue
                    logits = torch.randn(S * B, E)
                    scores, top = torch.topk(logits, K, dim=-1)  # Megatron topk_softmax_with_capacity
                    probs = torch.softmax(scores, dim=-1)  # default (pre-softmax off): softmax over the k
                    routing_map = torch.zeros(S * B, E, dtype=torch.bool).scatter(1, top, True)
                    _, expert_idx = routing_map.nonzero(as_tuple=True)
                    top_indices = expert_idx.view(S * B, K)
                    for t in range(S * B):
                        ex.add(glob, top[t].tolist(), probs[t].tolist(), mods[t])
                    layer = local if variant == "stage_local" else glob + 1  # layer_number is 1-based, global
                    files[st].append({"step": step, "stage": "pre_dispatch", "block": "decoder", "layer": layer, "rank": st,
                                      "num_tokens": S * B, "topk": K, "top_indices": top_indices.tolist()})
        for r, recs in files.items():
            with open(os.path.join(d, f"router_trace_rank{r}.jsonl"), "w") as f:
                for rec in recs:
                    f.write(json.dumps(rec) + "\n")
        with open(os.path.join(d, "modality.jsonl"), "w") as f:
            for m in side:
                f.write(json.dumps(m) + "\n")
        ex.extra["samples"] = 2
        ex.extra["layers"] = [1, 2, 3]
        ex.save(d)


# ---------------------------------------------------------------- vLLM n = 2
def vllm_n2():
    d = out_dir("vllm_n2")
    E, K, NL = 8, 2, 3
    ex = Expected()
    P = 5
    prompt = token_ids(P, (1, 3))
    outputs = []
    for c, O in enumerate([4, 3]):
        out = token_ids(O)
        T = P + O - 1
        seq = prompt + out
        routed = np.zeros((T, NL, K), dtype=np.int16)
        for t in range(T):
            mod = "image" if seq[t] == IMG else "text"
            ex.token(mod)
            for l in range(NL):
                logits = torch.randn(E)
                w, idx = torch.topk(torch.softmax(logits, -1), K)
                routed[t, l] = idx.numpy()
                ex.add(l, idx.tolist(), w.tolist(), mod)
        outputs.append({"index": c, "text": f"completion {c}", "token_ids": out,
                        "routed_experts": {"dtype": "int16", "shape": list(routed.shape), "data": base64.b64encode(routed.tobytes()).decode()}})
    ex.extra["samples"] = 2
    with open(os.path.join(d, "requests.jsonl"), "w") as f:
        f.write(json.dumps({"request_id": "req-n2", "prompt": "two completions", "prompt_token_ids": prompt, "outputs": outputs}) + "\n")
    ex.save(d)


# ---------------------------------------------------------------- vLLM, top-1 with dense layers (Maverick-like)
def vllm_top1_dense():
    d = out_dir("vllm_top1_dense")
    cfg = LLAMA4
    NL, E = cfg["num_hidden_layers"], cfg["num_local_experts"]
    moe = [l for l in range(NL) if (l + 1) % cfg["interleave_moe_layer_step"] == 0]
    ex = Expected()
    P, O = 6, 3
    prompt, out = token_ids(P), token_ids(O)
    T = P + O - 1
    routed = np.zeros((T, NL, 1), dtype=np.int16)  # dense layers stay all-zero
    for t in range(T):
        ex.token("text")
        for l in moe:
            e = int(torch.randint(0, E, (1,)))
            routed[t, l, 0] = e
            ex.add(l, [e], None, "text")
    with open(os.path.join(d, "requests.jsonl"), "w") as f:
        f.write(json.dumps({"request_id": "maverick-0", "prompt_token_ids": prompt,
                            "outputs": [{"index": 0, "token_ids": out, "routed_experts": routed.tolist()}]}) + "\n")
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    ex.extra["layers"] = moe
    ex.save(d)


# ---------------------------------------------------------------- SGLang /generate
def sglang():
    d = out_dir("sglang")
    cfg = {"model_type": "qwen3_moe", "num_hidden_layers": 3, "num_experts": 8, "num_experts_per_tok": 2, "decoder_sparse_step": 1, "mlp_only_layers": [0], "norm_topk_prob": True}
    NL, E, K = 3, 8, 2
    moe = [1, 2]
    ex = Expected()
    lines = []
    for r, (P, O) in enumerate([(5, 4), (4, 2)]):
        prompt, out = token_ids(P, (1, 3) if r == 0 else None), token_ids(O)
        T = P + O - 1  # the last generated token was never fed back
        seq = prompt + out
        buf = np.zeros((T, NL, K), dtype=np.int32)
        for t in range(T):
            mod = "image" if seq[t] == IMG else "text"
            ex.token(mod)
            for l in moe:
                w, idx = torch.topk(torch.softmax(torch.randn(E), -1), K)
                buf[t, l] = idx.numpy()
                ex.add(l, idx.tolist(), w.tolist(), mod)
        resp = {"text": f"answer {r}", "output_ids": out,
                "meta_info": {"id": f"rid-{r}", "finish_reason": {"type": "length", "length": O}, "prompt_tokens": P,
                              "completion_tokens": O, "cached_tokens": 0,
                              "routed_experts": base64.b64encode(buf.tobytes()).decode("utf-8")},
                "input_ids": prompt}
        lines.append(resp)
    with open(os.path.join(d, "generate.jsonl"), "w") as f:
        for x in lines:
            f.write(json.dumps(x) + "\n")
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    ex.extra["layers"] = moe
    ex.save(d)


# ---------------------------------------------------------------- llama.cpp-shaped table
def table_llamacpp():
    """A routing table with llama.cpp's batch shapes (src/llama-graph.cpp / models: before the last
    layer's FFN the graph keeps only the rows in inp_out_ids, so with logits for the last token only,
    the last layer routes one row per prompt ubatch). Columns in the older names (seq, token_id,
    expert_ids, weights; ids listed by expert id, weights beside them) plus domain."""
    d = out_dir("table_llamacpp")
    E, K, L = 8, 2, 3
    ex = Expected()
    rows = ["seq,pos,layer,token_id,expert_ids,weights,domain"]
    for seq, (P, O, dom) in enumerate([(6, 2, "arxiv"), (4, 1, "github")]):
        ids = token_ids(P + O, (1, 3) if seq == 0 else None)
        for t in ids:
            ex.token("image" if t == IMG else "text")
        ubatches = [list(range(P))] + [[P + i] for i in range(O)]
        for ub in ubatches:
            for l in range(L):
                routed = ub if l < L - 1 else ub[-1:]  # last layer: output rows only
                for t in routed:
                    p = torch.softmax(torch.randn(E), -1)
                    w, idx = torch.topk(p, K)
                    w = w / w.sum()
                    order = sorted(range(K), key=lambda j: int(idx[j]))
                    rows.append(f'{seq},{t},blk.{l}.ffn_moe_topk,{ids[t]},"{" ".join(str(int(idx[j])) for j in order)}","{" ".join(f"{float(w[j]):.6f}" for j in order)}",{dom}')
                    ex.add(l, idx.tolist(), w.tolist(), "image" if ids[t] == IMG else "text")
    with open(os.path.join(d, "routing.csv"), "w") as f:
        f.write("\n".join(rows) + "\n")
    ex.extra["domains"] = {"arxiv": 0, "github": 1}
    ex.save(d)


DSV3 = {"model_type": "deepseek_v3", "hidden_size": 16, "num_hidden_layers": 3, "first_k_dense_replace": 1, "moe_layer_freq": 1,
        "n_routed_experts": 16, "num_experts_per_tok": 4, "n_group": 4, "topk_group": 2, "norm_topk_prob": True,
        "routed_scaling_factor": 2.5, "scoring_func": "sigmoid", "topk_method": "noaux_tc"}
MINIMAX = {"model_type": "minimax_m2", "hidden_size": 16, "num_hidden_layers": 2, "num_local_experts": 8, "num_experts_per_tok": 2,
           "scoring_func": "sigmoid", "use_routing_bias": True}

def examples():
    """Small copies of these fixtures (and of scripts/make-import-fixtures.py's) under examples/import/,
    the inputs of the worked examples in docs/importers.md."""
    import shutil
    fx = os.path.join(ROOT, "test", "fixtures")
    copies = {
        "hf/llava_logits.safetensors": "import-hf/llava_logits.safetensors",
        "deepseek-v3/logits.safetensors": "import-engines/deepseek_v3/logits.safetensors",
        "deepseek-v3/config.json": "import-engines/deepseek_v3/config.json",
        "deepseek-v3/model-00001-of-00001.safetensors": "import-engines/deepseek_v3/model-00001-of-00001.safetensors",
        "llama4/logits.safetensors": "import-engines/llama4/logits.safetensors",
        "llama4/config.json": "import-engines/llama4/config.json",
        "vllm/requests.jsonl": "import-engines/vllm_n2/requests.jsonl",
        "vllm-maverick/requests.jsonl": "import-engines/vllm_top1_dense/requests.jsonl",
        "vllm-maverick/config.json": "import-engines/vllm_top1_dense/config.json",
        "sglang/generate.jsonl": "import-engines/sglang/generate.jsonl",
        "sglang/config.json": "import-engines/sglang/config.json",
        "megatron-pp/router_trace_rank0.jsonl": "import-engines/megatron_pp_stage_local/router_trace_rank0.jsonl",
        "megatron-pp/router_trace_rank1.jsonl": "import-engines/megatron_pp_stage_local/router_trace_rank1.jsonl",
        "megatron-pp/modality.jsonl": "import-engines/megatron_pp_stage_local/modality.jsonl",
        "megatron-replay/router_trace_rank0.jsonl": "import-engines/megatron_pp_layer_number/router_trace_rank0.jsonl",
        "megatron-replay/router_trace_rank1.jsonl": "import-engines/megatron_pp_layer_number/router_trace_rank1.jsonl",
        "megatron-replay/modality.jsonl": "import-engines/megatron_pp_layer_number/modality.jsonl",
        "megatron-logits/router_trace_rank0.jsonl": "import-megatron/router_trace_rank0.jsonl",
        "megatron-logits/logits_rank0.bin": "import-megatron/logits_rank0.bin",
        "megatron-logits/modality.jsonl": "import-megatron/modality.jsonl",
        "olmoe/c4_results.jsonl": "import-olmoe/c4_results.jsonl",
        "table/routing.csv": "import-engines/table_llamacpp/routing.csv",
        "tokenizer.json": "import-engines/tokenizer/tokenizer.json",
    }
    for dst, src in copies.items():
        d = os.path.join(ROOT, "examples", "import", dst)
        os.makedirs(os.path.dirname(d), exist_ok=True)
        shutil.copyfile(os.path.join(fx, src), d)


if __name__ == "__main__":
    biased("deepseek_v3", DSV3, DeepseekV3MoE, "model.layers.{}.mlp.gate.e_score_correction_bias")
    biased("minimax_m2", MINIMAX, MiniMaxM2SparseMoeBlock, "model.layers.{}.block_sparse_moe.e_score_correction_bias")
    llama4()
    megatron_pp()
    vllm_n2()
    vllm_top1_dense()
    sglang()
    table_llamacpp()
    examples()
    print("wrote test/fixtures/import-engines/*")
