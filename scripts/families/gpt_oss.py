"""gpt-oss, after transformers src/transformers/models/gpt_oss/modeling_gpt_oss.py.

GptOssMLP at model.layers.N.mlp with `router` GptOssTopKRouter (weight [E, hidden] AND bias [E]):
top-k (4) of the biased logits, softmax over those k values only.
4.x: the router returns (router_scores [T, E]: the k softmax values scattered into zeros, router_indices
  [T, K]); GptOssExperts(hidden, router_indices=, routing_weights=router_scores) reads
  routing_weights[token, expert]; GptOssMLP returns (routed_out, router_scores).
5.x: the router returns (router_logits, router_scores [T, K], router_indices [T, K]); the experts read
  top_k_weights[token, slot].
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from common import D, Config, Dispatch, FusedExperts, build, dispatch_loop

E, K, L = 8, 4, 3


class GptOssTopKRouter4(nn.Module):
    def __init__(self):
        super().__init__()
        self.top_k, self.num_experts, self.hidden_dim = K, E, D
        self.weight = nn.Parameter(torch.randn(E, D) * 0.5)
        self.bias = nn.Parameter(torch.randn(E) * 0.5)

    def forward(self, hidden_states):
        hidden_states = hidden_states.reshape(-1, self.hidden_dim)
        router_logits = F.linear(hidden_states, self.weight, self.bias)
        router_top_value, router_indices = torch.topk(router_logits, self.top_k, dim=-1)
        router_top_value = torch.nn.functional.softmax(router_top_value, dim=1, dtype=router_top_value.dtype)
        router_scores = torch.zeros_like(router_logits).scatter_(1, router_indices, router_top_value)
        return router_scores, router_indices


class GptOssTopKRouter5(GptOssTopKRouter4):
    def forward(self, hidden_states):
        router_logits = F.linear(hidden_states, self.weight, self.bias)
        router_top_value, router_indices = torch.topk(router_logits, self.top_k, dim=-1)
        router_scores = torch.nn.functional.softmax(router_top_value, dim=1, dtype=router_top_value.dtype)
        return router_logits, router_scores, router_indices


for c in (GptOssTopKRouter4, GptOssTopKRouter5):
    c.__name__ = c.__qualname__ = "GptOssTopKRouter"


class GptOssExperts(FusedExperts):
    def forward(self, hidden_states, router_indices=None, routing_weights=None):
        if routing_weights.shape[-1] == self.num_experts:  # 4.x: [T, E] scores
            weights = routing_weights.gather(1, router_indices)
        else:
            weights = routing_weights
        return dispatch_loop(self.dispatch, hidden_states, router_indices, weights, E, self.one)


class GptOssMLP(nn.Module):
    def __init__(self, router_cls):
        super().__init__()
        self.router = router_cls()
        self.experts = GptOssExperts(E)
        self.dispatch = self.experts.dispatch = Dispatch()

    def forward(self, hidden_states):
        b, s, d = hidden_states.shape
        x = hidden_states.reshape(-1, d)
        out = self.router(x)
        if len(out) == 2:
            router_scores, router_indices = out
        else:
            _, router_scores, router_indices = out
        routed_out = self.experts(x, router_indices=router_indices, routing_weights=router_scores)
        return routed_out.reshape(b, s, d), router_scores


def builder(router_cls):
    def b():
        cfg = Config(model_type="gpt_oss", num_hidden_layers=L, num_local_experts=E, num_experts_per_tok=K, hidden_size=D,
                     router_aux_loss_coef=0.9)
        return build("GptOssForCausalLM", [("model", "GptOssModel")], "GptOssDecoderLayer", "mlp", [GptOssMLP(router_cls) for _ in range(L)], cfg)
    return b


VARIANTS = {"gpt_oss-4x": builder(GptOssTopKRouter4), "gpt_oss-5x": builder(GptOssTopKRouter5)}
