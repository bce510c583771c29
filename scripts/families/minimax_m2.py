"""MiniMax-M2 (transformers 5.x), after src/transformers/models/minimax_m2/modeling_minimax_m2.py.

MiniMaxM2SparseMoeBlock at model.layers.N.block_sparse_moe: `gate` nn.Linear(hidden, E) returns
logits; the block owns the `e_score_correction_bias` buffer and route_tokens_to_experts:
sigmoid(float) + bias for the choice, topk(sorted=False), weights = the unbiased sigmoid scores
renormalised. MiniMaxM2Experts take (hidden, top_k_index, top_k_weights). Returns (hidden, router_logits).
"""
import torch
import torch.nn as nn

from common import D, Config, Dispatch, FusedExperts, build, dispatch_loop

E, K, L = 8, 2, 3


class MiniMaxM2Experts(FusedExperts):
    def forward(self, hidden_states, top_k_index, top_k_weights):
        return dispatch_loop(self.dispatch, hidden_states, top_k_index, top_k_weights, E, self.one)


class MiniMaxM2SparseMoeBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.top_k, self.jitter_noise = K, 0.0
        self.gate = nn.Linear(D, E, bias=False)
        self.experts = MiniMaxM2Experts(E)
        self.register_buffer("e_score_correction_bias", torch.randn(E) * 0.4)
        self.dispatch = self.experts.dispatch = Dispatch()

    def route_tokens_to_experts(self, router_logits):
        routing_weights = torch.nn.functional.sigmoid(router_logits.float())
        scores_for_choice = routing_weights + self.e_score_correction_bias
        _, top_k_index = torch.topk(scores_for_choice, self.top_k, dim=-1, sorted=False)
        top_k_weights = routing_weights.gather(1, top_k_index)
        top_k_weights /= top_k_weights.sum(dim=-1, keepdim=True)
        return top_k_index, top_k_weights.to(router_logits.dtype)

    def forward(self, hidden_states):
        b, s, d = hidden_states.shape
        hidden_states = hidden_states.view(-1, d)
        router_logits = self.gate(hidden_states)
        self.dispatch.logits = router_logits
        top_k_index, top_k_weights = self.route_tokens_to_experts(router_logits)
        hidden_states = self.experts(hidden_states, top_k_index, top_k_weights.to(hidden_states.dtype))
        return hidden_states.reshape(b, s, d), router_logits


def build_5x():
    cfg = Config(model_type="minimax_m2", num_hidden_layers=L, num_local_experts=E, num_experts_per_tok=K,
                 scoring_func="sigmoid", use_routing_bias=True, hidden_size=D)
    return build("MiniMaxM2ForCausalLM", [("model", "MiniMaxM2Model")], "MiniMaxM2DecoderLayer", "block_sparse_moe",
                 [MiniMaxM2SparseMoeBlock() for _ in range(L)], cfg)


VARIANTS = {"minimax_m2-5x": build_5x}
