"""Mixtral, after transformers src/transformers/models/mixtral/modeling_mixtral.py.

4.x: MixtralSparseMoeBlock at model.layers.N.block_sparse_moe; `gate` is nn.Linear(hidden, E) returning
logits; the block does softmax(float) -> topk -> renormalise inline and returns (hidden, router_logits);
experts are a ModuleList of MixtralBlockSparseTop2MLP (w1, w2, w3).
5.x: MixtralSparseMoeBlock at model.layers.N.mlp; `gate` is MixtralTopKRouter (weight [E, hidden])
returning (router_logits, router_scores [T, K], router_indices [T, K]); experts are MixtralExperts
(gate_up_proj, down_proj); the block returns hidden states only.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from common import D, Config, Dispatch, FusedExperts, build, dispatch_loop

E, K, L = 8, 2, 3


def config():
    return Config(model_type="mixtral", num_hidden_layers=L, num_local_experts=E, num_experts_per_tok=K, hidden_size=D,
                  router_jitter_noise=0.0)


class MixtralBlockSparseTop2MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.w1 = nn.Linear(D, 24, bias=False)
        self.w2 = nn.Linear(24, D, bias=False)
        self.w3 = nn.Linear(D, 24, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class MixtralSparseMoeBlock4(nn.Module):
    def __init__(self):
        super().__init__()
        self.num_experts, self.top_k = E, K
        self.gate = nn.Linear(D, E, bias=False)
        self.experts = nn.ModuleList([MixtralBlockSparseTop2MLP() for _ in range(E)])
        self.dispatch = Dispatch()

    def forward(self, hidden_states):
        b, s, d = hidden_states.shape
        hidden_states = hidden_states.view(-1, d)
        router_logits = self.gate(hidden_states)
        routing_weights = F.softmax(router_logits, dim=1, dtype=torch.float)
        routing_weights, selected_experts = torch.topk(routing_weights, self.top_k, dim=-1)
        routing_weights /= routing_weights.sum(dim=-1, keepdim=True)
        routing_weights = routing_weights.to(hidden_states.dtype)
        out = dispatch_loop(self.dispatch, hidden_states, selected_experts, routing_weights, E, lambda e, x: self.experts[e](x))
        return out.reshape(b, s, d), router_logits


MixtralSparseMoeBlock4.__name__ = "MixtralSparseMoeBlock"


class MixtralTopKRouter(nn.Module):
    def __init__(self):
        super().__init__()
        self.top_k, self.num_experts, self.hidden_dim = K, E, D
        self.weight = nn.Parameter(torch.randn(E, D) * 0.3)

    def forward(self, hidden_states):
        hidden_states = hidden_states.reshape(-1, self.hidden_dim)
        router_logits = F.linear(hidden_states, self.weight)
        router_probs = F.softmax(router_logits.float(), dim=-1)
        router_top_value, router_indices = torch.topk(router_probs, self.top_k, dim=-1)
        router_top_value /= router_top_value.sum(dim=-1, keepdim=True)
        router_scores = router_top_value
        return router_logits, router_scores, router_indices


class MixtralExperts(FusedExperts):
    def __init__(self):
        super().__init__(E)
        self.dispatch = None

    def forward(self, hidden_states, top_k_index, top_k_weights):
        return dispatch_loop(self.dispatch, hidden_states, top_k_index, top_k_weights, E, self.one)


class MixtralSparseMoeBlock5(nn.Module):
    def __init__(self):
        super().__init__()
        self.top_k = K
        self.gate = MixtralTopKRouter()
        self.experts = MixtralExperts()
        self.dispatch = self.experts.dispatch = Dispatch()

    def forward(self, hidden_states):
        b, s, d = hidden_states.shape
        hidden_states = hidden_states.view(-1, d)
        _, top_k_weights, top_k_index = self.gate(hidden_states)
        hidden_states = self.experts(hidden_states, top_k_index, top_k_weights.to(hidden_states.dtype))
        return hidden_states.reshape(b, s, d)


MixtralSparseMoeBlock5.__name__ = "MixtralSparseMoeBlock"


def build_4x():
    return build("MixtralForCausalLM", [("model", "MixtralModel")], "MixtralDecoderLayer", "block_sparse_moe",
                 [MixtralSparseMoeBlock4() for _ in range(L)], config())


def build_5x():
    return build("MixtralForCausalLM", [("model", "MixtralModel")], "MixtralDecoderLayer", "mlp",
                 [MixtralSparseMoeBlock5() for _ in range(L)], config())


VARIANTS = {"mixtral-4x": build_4x, "mixtral-5x": build_5x}


def build_4x_bf16():
    """Mixtral 4.x as usually loaded (torch_dtype=torch.bfloat16): logits in bf16, softmax in float32,
    the renormalised weights cast back to bf16 before they scale the experts."""
    return build_4x().to(torch.bfloat16)


VARIANTS["mixtral-4x-bf16"] = build_4x_bf16
