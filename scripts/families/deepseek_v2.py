"""DeepSeek-V2, after transformers src/transformers/models/deepseek_v2/modeling_deepseek_v2.py.

Softmax scores; topk_method "greedy" or "group_limited_greedy" (groups ranked by their best score,
the best topk_group kept, others masked to 0); weights = the chosen softmax scores times
routed_scaling_factor (not renormalised). First first_k_dense_replace layers dense.
4.x: DeepseekV2MoEGate (weight [E, hidden]) gets [B, S, H] and returns (topk_idx, topk_weight);
  DeepseekV2MoE.forward calls self.moe(hidden, topk_indices, topk_weights).
5.x: DeepseekV2Moe: `gate` nn.Linear returns logits [B, S, E]; route_tokens_to_experts(router_logits)
  returns (topk_idx, topk_weight).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from common import D, MLP, Config, Dispatch, FusedExperts, build, dispatch_loop

E, K, L = 8, 2, 3


def config():
    return Config(model_type="deepseek_v2", num_hidden_layers=L, n_routed_experts=E, num_experts_per_tok=K, n_group=4,
                  topk_group=2, topk_method="group_limited_greedy", routed_scaling_factor=16.0, norm_topk_prob=False,
                  scoring_func="softmax", first_k_dense_replace=1, hidden_size=D)


def group_limited(scores, n_group, topk_group, k):
    T = scores.shape[0]
    group_scores = scores.view(T, n_group, -1).max(dim=-1).values
    group_idx = torch.topk(group_scores, k=topk_group, dim=-1, sorted=False)[1]
    group_mask = torch.zeros_like(group_scores)
    group_mask.scatter_(1, group_idx, 1)
    score_mask = group_mask.unsqueeze(-1).expand(T, n_group, E // n_group).reshape(T, -1)
    tmp_scores = scores.masked_fill(~score_mask.bool(), 0.0)
    return torch.topk(tmp_scores, k=k, dim=-1, sorted=False)


class DeepseekV2MoEGate(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.config, self.top_k, self.num_experts = cfg, K, E
        self.routed_scaling_factor, self.topk_method = cfg.routed_scaling_factor, cfg.topk_method
        self.num_group, self.topk_group, self.norm_topk_prob = cfg.n_group, cfg.topk_group, cfg.norm_topk_prob
        self.weight = nn.Parameter(torch.randn(E, D) * 0.5)

    def forward(self, hidden_states):
        batch_size, seq_len, hidden_dim = hidden_states.shape
        hidden_states = hidden_states.view(-1, hidden_dim)
        logits = F.linear(hidden_states.type(torch.float32), self.weight.type(torch.float32), None)
        self.last_logits = logits
        scores = logits.softmax(dim=-1, dtype=torch.float32)
        topk_weight, topk_idx = group_limited(scores, self.num_group, self.topk_group, self.top_k)
        topk_weight = topk_weight * self.routed_scaling_factor
        return topk_idx, topk_weight


class DeepseekV2MoE(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        self.experts = nn.ModuleList([MLP() for _ in range(E)])
        self.gate = DeepseekV2MoEGate(cfg)
        self.shared_experts = MLP()
        self.dispatch = Dispatch()

    def moe(self, hidden_states, topk_ids, topk_weight):
        return dispatch_loop(self.dispatch, hidden_states, topk_ids, topk_weight.type(hidden_states.dtype), E, lambda e, x: self.experts[e](x))

    def forward(self, hidden_states):
        residuals, orig_shape = hidden_states, hidden_states.shape
        topk_indices, topk_weights = self.gate(hidden_states)
        self.dispatch.logits = self.gate.last_logits
        hidden_states = hidden_states.view(-1, hidden_states.shape[-1])
        hidden_states = self.moe(hidden_states, topk_indices, topk_weights).view(*orig_shape)
        return hidden_states + self.shared_experts(residuals)


class DeepseekV2Experts(FusedExperts):
    def forward(self, hidden_states, top_k_index, top_k_weights):
        return dispatch_loop(self.dispatch, hidden_states, top_k_index, top_k_weights, E, self.one)


class DeepseekV2Moe(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        self.experts = DeepseekV2Experts(E)
        self.gate = nn.Linear(D, E, bias=False)
        self.shared_experts = MLP()
        self.routed_scaling_factor, self.topk_method = cfg.routed_scaling_factor, cfg.topk_method
        self.num_group, self.top_k, self.topk_group, self.num_experts = cfg.n_group, K, cfg.topk_group, E
        self.dispatch = self.experts.dispatch = Dispatch()

    def route_tokens_to_experts(self, router_logits):
        batch_size, seq_len, hidden_dim = router_logits.shape
        router_logits = router_logits.view(-1, hidden_dim)
        router_logits = router_logits.softmax(dim=-1, dtype=torch.float32)
        topk_weight, topk_idx = group_limited(router_logits, self.num_group, self.topk_group, self.top_k)
        topk_weight = topk_weight * self.routed_scaling_factor
        return topk_idx, topk_weight

    def forward(self, hidden_states):
        residuals, orig_shape = hidden_states, hidden_states.shape
        router_logits = self.gate(hidden_states)
        self.dispatch.logits = router_logits.reshape(-1, E)
        topk_indices, topk_weights = self.route_tokens_to_experts(router_logits)
        hidden_states = hidden_states.view(-1, hidden_states.shape[-1])
        hidden_states = self.experts(hidden_states, topk_indices, topk_weights).view(*orig_shape)
        return hidden_states + self.shared_experts(residuals)


def builder(moe_cls):
    def b():
        cfg = config()
        ffns = [type("DeepseekV2MLP", (MLP,), {})() if i < cfg.first_k_dense_replace else moe_cls(cfg) for i in range(L)]
        return build("DeepseekV2ForCausalLM", [("model", "DeepseekV2Model")], "DeepseekV2DecoderLayer", "mlp", ffns, cfg)
    return b


VARIANTS = {"deepseek_v2-4x": builder(DeepseekV2MoE), "deepseek_v2-5x": builder(DeepseekV2Moe)}
