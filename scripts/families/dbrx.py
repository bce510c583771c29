"""DBRX (transformers 4.x), after src/transformers/models/dbrx/modeling_dbrx.py.

DbrxFFN at transformer.blocks.N.ffn with `router` DbrxRouter (`layer` Linear): softmax(float32) over
all experts, top-k (ffn_config.moe_top_k), top weights divided by their p-norm
(moe_normalize_expert_weights, 1 = sum); returns (weights [T, E], top_weights [T, K], top_experts
[T, K]). DbrxExperts loop over the one-hot mask of top_experts, scaling by top_weights.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from common import D, Config, Dispatch, FusedExperts, build, dispatch_loop

E, K, L = 8, 2, 3


class DbrxRouter(nn.Module):
    def __init__(self, hidden_size, moe_num_experts, moe_top_k, moe_jitter_eps, moe_normalize_expert_weights):
        super().__init__()
        self.hidden_size, self.moe_num_experts, self.moe_top_k = hidden_size, moe_num_experts, moe_top_k
        self.moe_jitter_eps, self.moe_normalize_expert_weights = moe_jitter_eps, moe_normalize_expert_weights
        self.layer = nn.Linear(self.hidden_size, self.moe_num_experts, bias=False)

    def forward(self, hidden_states):
        hidden_states = hidden_states.view(-1, hidden_states.shape[-1])
        weights = self.layer(hidden_states).softmax(dim=-1, dtype=torch.float32)
        top_weights, top_experts = torch.topk(weights, self.moe_top_k, dim=-1)
        top_weights_scale = (torch.norm(top_weights, p=self.moe_normalize_expert_weights, dim=-1, keepdim=True)
                             if self.moe_normalize_expert_weights is not None else 1.0)
        top_weights = top_weights / top_weights_scale
        weights = weights.to(hidden_states.dtype)
        top_weights = top_weights.to(hidden_states.dtype)
        return weights, top_weights, top_experts


class DbrxExperts(FusedExperts):
    def forward(self, x, weights, top_weights, top_experts):
        bsz, q_len, hidden_size = x.shape
        out = dispatch_loop(self.dispatch, x.view(-1, hidden_size), top_experts, top_weights, E, self.one)
        return out.reshape(bsz, q_len, hidden_size)


class DbrxFFN(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        f = cfg.ffn_config
        self.router = DbrxRouter(D, f["moe_num_experts"], f["moe_top_k"], f["moe_jitter_eps"], f["moe_normalize_expert_weights"])
        self.experts = DbrxExperts(E)
        self.dispatch = self.experts.dispatch = Dispatch()

    def forward(self, x):
        weights, top_weights, top_experts = self.router(x)
        out = self.experts(x, weights, top_weights, top_experts)
        return out, weights


def build_4x():
    cfg = Config(model_type="dbrx", n_layers=L, d_model=D,
                 ffn_config={"moe_num_experts": E, "moe_top_k": K, "moe_jitter_eps": 0, "moe_normalize_expert_weights": 1})
    return build("DbrxForCausalLM", [("transformer", "DbrxModel")], "DbrxBlock", "ffn", [DbrxFFN(cfg) for _ in range(L)], cfg, embed_attr="wte")


VARIANTS = {"dbrx-4x": build_4x}
