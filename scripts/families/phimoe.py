"""Phi-3.5-MoE (transformers 4.x), after src/transformers/models/phimoe/modeling_phimoe.py.

PhimoeSparseMoeBlock at model.layers.N.block_sparse_moe: `gate` nn.Linear returns logits; the block
calls the module-level `sparsemixer(router_logits, jitter_eps=router_jitter_noise, training=...)`,
which (in eval) takes the argmax as expert 1 with weight = softmax over the experts whose logit lies
within 2*jitter_eps (relative) of the max, then the same for the best remaining expert - so the
weights are not a softmax top-k and the second may exceed the first. Returns (multiplier [T, 2],
selected_experts [T, 2]); the helper wraps that function.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from common import D, Config, Dispatch, build, dispatch_loop

E, K, L = 8, 2, 3


def sparsemixer(scores, jitter_eps, training, top_k=2):
    if top_k != 2:
        raise ValueError("top_k must be equal to 2")
    with torch.no_grad():
        mask_logits_threshold, max_ind = scores.max(dim=-1, keepdim=True)
        factor = scores.abs().clamp(min=mask_logits_threshold)
        mask_logits_threshold = ((mask_logits_threshold - scores) / factor) > (2 * jitter_eps)
    masked_gates = scores.masked_fill(mask_logits_threshold, float("-inf"))
    selected_experts = max_ind
    masked_gates = torch.softmax(masked_gates, dim=-1)
    multiplier = masked_gates.gather(dim=-1, index=selected_experts)
    masked_scores = torch.scatter(scores, -1, selected_experts, float("-inf"))
    with torch.no_grad():
        mask_logits_threshold, max_ind = masked_scores.max(dim=-1, keepdim=True)
        factor = scores.abs().clamp(min=mask_logits_threshold)
        mask_logits_threshold = ((mask_logits_threshold - scores) / factor) > (2 * jitter_eps)
    masked_gates_top2 = masked_scores.masked_fill(mask_logits_threshold, float("-inf"))
    selected_experts_top2 = max_ind
    masked_gates_top2 = torch.softmax(masked_gates_top2, dim=-1)
    multiplier_top2 = masked_gates_top2.gather(dim=-1, index=selected_experts_top2)
    multiplier = torch.concat((multiplier, multiplier_top2), dim=-1)
    selected_experts = torch.concat((selected_experts, selected_experts_top2), dim=-1)
    return multiplier, selected_experts


class PhimoeBlockSparseTop2MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.w1, self.w2, self.w3 = nn.Linear(D, 24, bias=False), nn.Linear(24, D, bias=False), nn.Linear(D, 24, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class PhimoeSparseMoeBlock(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.num_experts, self.top_k, self.router_jitter_noise = E, K, cfg.router_jitter_noise
        self.gate = nn.Linear(D, E, bias=False)
        with torch.no_grad():
            self.gate.weight.mul_(0.05)  # logits close together, so sparsemixer's masks keep several experts
        self.experts = nn.ModuleList([PhimoeBlockSparseTop2MLP() for _ in range(E)])
        self.dispatch = Dispatch()

    def forward(self, hidden_states):
        b, s, d = hidden_states.shape
        hidden_states = hidden_states.view(-1, d)
        router_logits = self.gate(hidden_states)
        routing_weights, selected_experts = sparsemixer(router_logits, jitter_eps=self.router_jitter_noise, training=self.training)
        out = dispatch_loop(self.dispatch, hidden_states, selected_experts, routing_weights, E, lambda e, x: self.experts[e](x))
        return out.reshape(b, s, d), router_logits


def build_4x():
    cfg = Config(model_type="phimoe", num_hidden_layers=L, num_local_experts=E, num_experts_per_tok=K, router_jitter_noise=0.01,
                 input_jitter_noise=0.01, hidden_size=D)
    return build("PhimoeForCausalLM", [("model", "PhimoeModel")], "PhimoeDecoderLayer", "block_sparse_moe",
                 [PhimoeSparseMoeBlock(cfg) for _ in range(L)], cfg)


VARIANTS = {"phimoe-4x": build_4x}
