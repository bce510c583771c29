"""Qwen2-MoE (transformers 4.x), after src/transformers/models/qwen2_moe/modeling_qwen2_moe.py.

Qwen2MoeSparseMoeBlock at model.layers.N.mlp: `gate` nn.Linear(hidden, num_experts) returns logits;
softmax(float) -> topk -> renormalise only if config.norm_topk_prob (False for Qwen1.5-MoE); experts
ModuleList of Qwen2MoeMLP; plus `shared_expert` scaled by sigmoid(`shared_expert_gate`(x)) - a gate
that is not a router. Returns (hidden, router_logits). Decoder layers in `mlp_only_layers` (here 0)
have a dense Qwen2MoeMLP.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from common import D, MLP, Config, Dispatch, build, dispatch_loop

E, K, L = 8, 2, 4


class Qwen2MoeMLP(MLP):
    pass


class Qwen2MoeSparseMoeBlock(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.num_experts, self.top_k, self.norm_topk_prob = cfg.num_experts, cfg.num_experts_per_tok, cfg.norm_topk_prob
        self.gate = nn.Linear(D, E, bias=False)
        self.experts = nn.ModuleList([Qwen2MoeMLP() for _ in range(E)])
        self.shared_expert = Qwen2MoeMLP(32)
        self.shared_expert_gate = nn.Linear(D, 1, bias=False)
        self.dispatch = Dispatch()

    def forward(self, hidden_states):
        b, s, d = hidden_states.shape
        hidden_states = hidden_states.view(-1, d)
        router_logits = self.gate(hidden_states)
        routing_weights = F.softmax(router_logits, dim=1, dtype=torch.float)
        routing_weights, selected_experts = torch.topk(routing_weights, self.top_k, dim=-1)
        if self.norm_topk_prob:
            routing_weights /= routing_weights.sum(dim=-1, keepdim=True)
        routing_weights = routing_weights.to(hidden_states.dtype)
        out = dispatch_loop(self.dispatch, hidden_states, selected_experts, routing_weights, E, lambda e, x: self.experts[e](x))
        shared = self.shared_expert(hidden_states) * torch.sigmoid(self.shared_expert_gate(hidden_states))
        return (out + shared).reshape(b, s, d), router_logits


def build_4x():
    cfg = Config(model_type="qwen2_moe", num_hidden_layers=L, num_experts=E, num_experts_per_tok=K, norm_topk_prob=False,
                 decoder_sparse_step=1, mlp_only_layers=[0], hidden_size=D)
    ffns = [Qwen2MoeMLP() if i in cfg.mlp_only_layers else Qwen2MoeSparseMoeBlock(cfg) for i in range(L)]
    return build("Qwen2MoeForCausalLM", [("model", "Qwen2MoeModel")], "Qwen2MoeDecoderLayer", "mlp", ffns, cfg)


VARIANTS = {"qwen2_moe-4x": build_4x}
