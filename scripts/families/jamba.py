"""Jamba (transformers 4.x), after src/transformers/models/jamba/modeling_jamba.py.

JambaSparseMoeBlock at model.layers.N.feed_forward in layers i % expert_layer_period ==
expert_layer_offset (period 2, offset 1); other layers have a dense JambaMLP. `router`
nn.Linear(hidden, num_experts) returns logits; softmax(float) -> topk(2), NOT renormalised; experts
ModuleList of JambaMLP. Returns (hidden, router_logits).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from common import D, MLP, Config, Dispatch, build, dispatch_loop

E, K, L = 8, 2, 4


class JambaMLP(MLP):
    pass


class JambaSparseMoeBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden_dim, self.num_experts, self.top_k = D, E, K
        self.router = nn.Linear(D, E, bias=False)
        self.experts = nn.ModuleList([JambaMLP() for _ in range(E)])
        self.dispatch = Dispatch()

    def forward(self, hidden_states):
        b, s, d = hidden_states.shape
        hidden_states = hidden_states.view(-1, d)
        router_logits = self.router(hidden_states)
        routing_weights = F.softmax(router_logits, dim=1, dtype=torch.float)
        routing_weights, selected_experts = torch.topk(routing_weights, self.top_k, dim=-1)
        routing_weights = routing_weights.to(hidden_states.dtype)
        out = dispatch_loop(self.dispatch, hidden_states, selected_experts, routing_weights, E, lambda e, x: self.experts[e](x))
        return out.reshape(b, s, d), router_logits


def build_4x():
    cfg = Config(model_type="jamba", num_hidden_layers=L, num_experts=E, num_experts_per_tok=K, expert_layer_period=2,
                 expert_layer_offset=1, hidden_size=D)
    ffns = [JambaSparseMoeBlock() if i % 2 == 1 else JambaMLP() for i in range(L)]
    return build("JambaForCausalLM", [("model", "JambaModel")], "JambaAttentionDecoderLayer", "feed_forward", ffns, cfg)


VARIANTS = {"jamba-4x": build_4x}
