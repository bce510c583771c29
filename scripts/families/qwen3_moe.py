"""Qwen3-MoE (transformers 5.x), after src/transformers/models/qwen3_moe/modeling_qwen3_moe.py.

Qwen3MoeSparseMoeBlock at model.layers.N.mlp: `gate` is Qwen3MoeTopKRouter (weight [E, hidden])
returning (router_logits, router_scores [T, K], router_indices [T, K]): softmax(float) -> topk ->
renormalise if norm_topk_prob (True for Qwen3-30B-A3B); `experts` Qwen3MoeExperts (fused
gate_up_proj / down_proj) called with (hidden, top_k_index, top_k_weights).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from common import D, Config, Dispatch, FusedExperts, build, dispatch_loop

E, K, L = 8, 2, 3


class Qwen3MoeTopKRouter(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.top_k, self.num_experts, self.norm_topk_prob, self.hidden_dim = K, E, cfg.norm_topk_prob, D
        self.weight = nn.Parameter(torch.randn(E, D) * 0.3)

    def forward(self, hidden_states):
        hidden_states = hidden_states.reshape(-1, self.hidden_dim)
        router_logits = F.linear(hidden_states, self.weight)
        router_logits = F.softmax(router_logits, dtype=torch.float, dim=-1)
        router_top_value, router_indices = torch.topk(router_logits, self.top_k, dim=-1)
        if self.norm_topk_prob:
            router_top_value /= router_top_value.sum(dim=-1, keepdim=True)
        router_top_value = router_top_value.to(router_logits.dtype)
        router_scores = router_top_value
        return router_logits, router_scores, router_indices


class Qwen3MoeExperts(FusedExperts):
    def forward(self, hidden_states, top_k_index, top_k_weights):
        return dispatch_loop(self.dispatch, hidden_states, top_k_index, top_k_weights, E, self.one)


class Qwen3MoeSparseMoeBlock(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.experts = Qwen3MoeExperts(E)
        self.gate = Qwen3MoeTopKRouter(cfg)
        self.dispatch = self.experts.dispatch = Dispatch()

    def forward(self, hidden_states):
        b, s, d = hidden_states.shape
        x = hidden_states.view(-1, d)
        _, routing_weights, selected_experts = self.gate(x)
        return self.experts(x, selected_experts, routing_weights).reshape(b, s, d)


def build_5x():
    cfg = Config(model_type="qwen3_moe", num_hidden_layers=L, num_experts=E, num_experts_per_tok=K, norm_topk_prob=True,
                 decoder_sparse_step=1, mlp_only_layers=[], hidden_size=D)
    return build("Qwen3MoeForCausalLM", [("model", "Qwen3MoeModel")], "Qwen3MoeDecoderLayer", "mlp",
                 [Qwen3MoeSparseMoeBlock(cfg) for _ in range(L)], cfg)


VARIANTS = {"qwen3_moe-5x": build_5x}
