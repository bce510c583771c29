"""DeepSeek-V3 (and GLM-4.5, which copies it), after transformers
src/transformers/models/deepseek_v3/modeling_deepseek_v3.py and glm4_moe/modeling_glm4_moe.py.

Sigmoid scores; a selection-only `e_score_correction_bias`; group-limited choice (n_group groups, the
best topk_group by the sum of their two best biased scores); top-k among those; weights are the
UNbiased sigmoid scores of the chosen experts, renormalised (norm_topk_prob) and multiplied by
routed_scaling_factor. First `first_k_dense_replace` decoder layers are dense.
4.x: DeepseekV3TopkRouter (weight, e_score_correction_bias buffer, get_topk_indices) returns
  (topk_indices, topk_weights); DeepseekV3MoE.forward calls self.moe(hidden, topk_indices, topk_weights).
5.x: DeepseekV3TopkRouter returns router_logits only (float32 F.linear); DeepseekV3MoE.route_tokens_to_experts
  does the biased, group-limited top-k; the helper must read that, not the gate.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from common import D, MLP, Config, Dispatch, FusedExperts, build, dispatch_loop

E, K, L = 8, 2, 3


def config(model_type, n_group, topk_group):
    return Config(model_type=model_type, num_hidden_layers=L, n_routed_experts=E, num_experts_per_tok=K, n_group=n_group,
                  topk_group=topk_group, norm_topk_prob=True, routed_scaling_factor=2.5, first_k_dense_replace=1,
                  scoring_func="sigmoid", topk_method="noaux_tc", n_shared_experts=1, hidden_size=D)


def make(prefix, cfg):
    """The router / MoE classes of one DeepSeek-V3-style family, 4.x and 5.x."""

    class TopkRouter4(nn.Module):
        def __init__(self):
            super().__init__()
            self.config = cfg
            self.top_k, self.n_routed_experts, self.routed_scaling_factor = K, E, cfg.routed_scaling_factor
            self.n_group, self.topk_group, self.norm_topk_prob = cfg.n_group, cfg.topk_group, cfg.norm_topk_prob
            self.weight = nn.Parameter(torch.randn(E, D) * 0.5)
            self.register_buffer("e_score_correction_bias", torch.randn(E) * 0.4)

        @torch.no_grad()
        def get_topk_indices(self, scores):
            scores_for_choice = scores.view(-1, self.n_routed_experts) + self.e_score_correction_bias.unsqueeze(0)
            group_scores = scores_for_choice.view(-1, self.n_group, self.n_routed_experts // self.n_group).topk(2, dim=-1)[0].sum(dim=-1)
            group_idx = torch.topk(group_scores, k=self.topk_group, dim=-1, sorted=False)[1]
            group_mask = torch.zeros_like(group_scores)
            group_mask.scatter_(1, group_idx, 1)
            score_mask = group_mask.unsqueeze(-1).expand(-1, self.n_group, self.n_routed_experts // self.n_group).reshape(-1, self.n_routed_experts)
            scores_for_choice = scores_for_choice.masked_fill(~score_mask.bool(), 0.0)
            return torch.topk(scores_for_choice, k=self.top_k, dim=-1, sorted=False)[1]

        def forward(self, hidden_states):
            hidden_states = hidden_states.view(-1, self.config.hidden_size)
            router_logits = F.linear(hidden_states.type(torch.float32), self.weight.type(torch.float32))
            self.last_logits = router_logits
            scores = router_logits.sigmoid()
            topk_indices = self.get_topk_indices(scores)
            topk_weights = scores.gather(1, topk_indices)
            if self.norm_topk_prob:
                topk_weights /= topk_weights.sum(dim=-1, keepdim=True) + 1e-20
            topk_weights = topk_weights * self.routed_scaling_factor
            return topk_indices, topk_weights

    class MoE4(nn.Module):
        def __init__(self):
            super().__init__()
            self.config = cfg
            self.experts = nn.ModuleList([MLP() for _ in range(E)])
            self.gate = TopkRouter4()
            self.shared_experts = MLP()
            self.dispatch = Dispatch()

        def moe(self, hidden_states, topk_indices, topk_weights):
            return dispatch_loop(self.dispatch, hidden_states, topk_indices, topk_weights.type(hidden_states.dtype), E, lambda e, x: self.experts[e](x))

        def forward(self, hidden_states):
            residuals, orig_shape = hidden_states, hidden_states.shape
            topk_indices, topk_weights = self.gate(hidden_states)
            self.dispatch.logits = self.gate.last_logits
            hidden_states = hidden_states.view(-1, hidden_states.shape[-1])
            hidden_states = self.moe(hidden_states, topk_indices, topk_weights).view(*orig_shape)
            return hidden_states + self.shared_experts(residuals)

    class TopkRouter5(nn.Module):
        def __init__(self):
            super().__init__()
            self.config = cfg
            self.top_k, self.n_routed_experts = K, E
            self.weight = nn.Parameter(torch.randn(E, D) * 0.5)
            self.register_buffer("e_score_correction_bias", torch.randn(E) * 0.4)

        def forward(self, hidden_states):
            hidden_states = hidden_states.view(-1, self.config.hidden_size)
            return F.linear(hidden_states.type(torch.float32), self.weight.type(torch.float32))

    class NaiveMoe(FusedExperts):
        def forward(self, hidden_states, top_k_index, top_k_weights):
            return dispatch_loop(self.dispatch, hidden_states, top_k_index, top_k_weights, E, self.one)

    class MoE5(nn.Module):
        def __init__(self):
            super().__init__()
            self.config = cfg
            self.experts = NaiveMoe(E)
            self.gate = TopkRouter5()
            self.shared_experts = MLP()
            self.n_routed_experts, self.n_group, self.topk_group = E, cfg.n_group, cfg.topk_group
            self.norm_topk_prob, self.routed_scaling_factor, self.top_k = cfg.norm_topk_prob, cfg.routed_scaling_factor, K
            self.dispatch = self.experts.dispatch = Dispatch()

        def route_tokens_to_experts(self, router_logits):
            router_logits = router_logits.sigmoid()
            router_logits_for_choice = router_logits + self.gate.e_score_correction_bias
            group_scores = router_logits_for_choice.view(-1, self.n_group, self.n_routed_experts // self.n_group).topk(2, dim=-1)[0].sum(dim=-1)
            group_idx = torch.topk(group_scores, k=self.topk_group, dim=-1, sorted=False)[1]
            group_mask = torch.zeros_like(group_scores)
            group_mask.scatter_(1, group_idx, 1)
            score_mask = group_mask.unsqueeze(-1).expand(-1, self.n_group, self.n_routed_experts // self.n_group).reshape(-1, self.n_routed_experts)
            scores_for_choice = router_logits_for_choice.masked_fill(~score_mask.bool(), 0.0)
            topk_indices = torch.topk(scores_for_choice, k=self.top_k, dim=-1, sorted=False)[1]
            topk_weights = router_logits.gather(1, topk_indices)
            if self.norm_topk_prob:
                topk_weights /= topk_weights.sum(dim=-1, keepdim=True) + 1e-20
            topk_weights = topk_weights * self.routed_scaling_factor
            return topk_indices, topk_weights

        def forward(self, hidden_states):
            residuals, orig_shape = hidden_states, hidden_states.shape
            router_logits = self.gate(hidden_states)
            self.dispatch.logits = router_logits
            topk_indices, topk_weights = self.route_tokens_to_experts(router_logits)
            hidden_states = hidden_states.view(-1, hidden_states.shape[-1])
            hidden_states = self.experts(hidden_states, topk_indices, topk_weights).view(*orig_shape)
            return hidden_states + self.shared_experts(residuals)

    for c, n in ((TopkRouter4, "TopkRouter"), (TopkRouter5, "TopkRouter"), (MoE4, "MoE"), (MoE5, "MoE"), (NaiveMoe, "NaiveMoe")):
        c.__name__ = c.__qualname__ = prefix + n
    return MoE4, MoE5


def variant(prefix, model_type, version, n_group, topk_group):
    def builder():
        cfg = config(model_type, n_group, topk_group)
        MoE4, MoE5 = make(prefix, cfg)
        moe = MoE4 if version == 4 else MoE5
        dense = type(prefix + "MLP", (MLP,), {})
        ffns = [dense() if i < cfg.first_k_dense_replace else moe() for i in range(L)]
        return build(prefix + "ForCausalLM", [("model", prefix + "Model")], prefix + "DecoderLayer", "mlp", ffns, cfg)
    return builder


VARIANTS = {
    "deepseek_v3-4x": variant("DeepseekV3", "deepseek_v3", 4, 4, 2),
    "deepseek_v3-5x": variant("DeepseekV3", "deepseek_v3", 5, 4, 2),
}
