"""OLMoE (transformers 4.x), after src/transformers/models/olmoe/modeling_olmoe.py.

OlmoeSparseMoeBlock at model.layers.N.mlp: `gate` nn.Linear(hidden, num_experts) returns logits;
softmax(float) -> topk(num_experts_per_tok=8 in OLMoE-1B-7B; 2 here) -> renormalise only if
norm_topk_prob (False for OLMoE); experts ModuleList of OlmoeMLP. Returns (hidden, router_logits).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from common import D, MLP, Config, Dispatch, build, dispatch_loop

E, K, L = 8, 2, 3


class OlmoeMLP(MLP):
    pass


class OlmoeSparseMoeBlock(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.num_experts, self.top_k, self.norm_topk_prob = E, K, cfg.norm_topk_prob
        self.gate = nn.Linear(D, E, bias=False)
        self.experts = nn.ModuleList([OlmoeMLP() for _ in range(E)])
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
        return out.reshape(b, s, d), router_logits


def build_4x():
    cfg = Config(model_type="olmoe", num_hidden_layers=L, num_experts=E, num_experts_per_tok=K, norm_topk_prob=False, hidden_size=D)
    return build("OlmoeForCausalLM", [("model", "OlmoeModel")], "OlmoeDecoderLayer", "mlp", [OlmoeSparseMoeBlock(cfg) for _ in range(L)], cfg)


VARIANTS = {"olmoe-4x": build_4x}
