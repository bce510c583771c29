"""Llama-4, after transformers src/transformers/models/llama4/modeling_llama4.py.

Llama4TextMoe at language_model.model.layers.N.feed_forward (every interleave_moe_layer_step-th
layer; others a dense Llama4TextMLP): top-1 (num_experts_per_tok=1) of the raw router logits; the
expert's weight is sigmoid(its logit) - scattered into -inf so that the other experts get
sigmoid(-inf) = 0 - and it scales the expert's INPUT (routed_in = hidden * score); plus shared_expert.
4.51: `router` is nn.Linear returning logits; top-k, scatter and sigmoid happen in Llama4TextMoe.forward.
4.52+: `router` is Llama4Router(nn.Linear) returning (router_scores [T, E], router_logits [T, E]).
"""
import torch
import torch.nn as nn

from common import D, MLP, Config, Dispatch, build

E, K, L, I = 8, 1, 4, 24


def config():
    text = Config(model_type="llama4_text", num_hidden_layers=L, num_local_experts=E, num_experts_per_tok=K,
                  interleave_moe_layer_step=2, hidden_size=D)
    return Config(model_type="llama4", text_config=text, image_token_index=5)


class Llama4TextMLP(MLP):
    pass


class Llama4TextExperts(nn.Module):
    def __init__(self):
        super().__init__()
        self.num_experts, self.hidden_size, self.expert_dim = E, D, I
        self.gate_up_proj = nn.Parameter(torch.randn(E, D, 2 * I) * 0.3)
        self.down_proj = nn.Parameter(torch.randn(E, I, D) * 0.3)

    def forward(self, hidden_states):
        hidden_states = hidden_states.view(self.gate_up_proj.shape[0], -1, self.hidden_size)
        gate_up = torch.bmm(hidden_states, self.gate_up_proj)
        gate, up = gate_up.chunk(2, dim=-1)
        return torch.bmm(up * torch.nn.functional.silu(gate), self.down_proj).view(-1, self.hidden_size)


class Llama4Router(nn.Linear):
    def __init__(self):
        super().__init__(D, E, bias=False)
        self.num_experts, self.top_k = E, K

    def forward(self, hidden_states):
        router_logits = super().forward(hidden_states)
        router_top_value, router_indices = torch.topk(router_logits, self.top_k, dim=1)
        router_scores = torch.full_like(router_logits, float("-inf")).scatter_(1, router_indices, router_top_value)
        router_scores = torch.nn.functional.sigmoid(router_scores.float()).to(router_scores.dtype)
        return router_scores, router_logits


class Llama4TextMoe(nn.Module):
    def __init__(self, router_cls):
        super().__init__()
        self.top_k, self.hidden_dim, self.num_experts = K, D, E
        self.experts = Llama4TextExperts()
        self.router = router_cls()
        with torch.no_grad():
            self.router.weight.mul_(4.0)  # trained routers are confident: top logits ~2, gates ~0.85-0.92
        self.shared_expert = Llama4TextMLP()
        self.dispatch = Dispatch()

    def forward(self, hidden_states):
        hidden_states = hidden_states.reshape(-1, self.hidden_dim)
        out = self.router(hidden_states)
        if isinstance(out, tuple):  # 4.52+
            router_scores, router_logits = out
        else:  # 4.51: the same steps inline
            router_logits = out
            router_top_value, router_indices = torch.topk(router_logits, self.top_k, dim=1)
            router_scores = torch.full_like(router_logits, float("-inf")).scatter_(1, router_indices, router_top_value)
            router_scores = torch.sigmoid(router_scores.float()).to(hidden_states.dtype)
        scores_et = router_scores.transpose(0, 1)  # [E, T]
        for e in range(E):
            used = scores_et[e] > 0
            if used.any():
                self.dispatch.add(used.nonzero()[:, 0], e, scores_et[e][used])
        routed_in = hidden_states.repeat(router_scores.shape[1], 1)
        routed_in = routed_in * scores_et.reshape(-1, 1)
        routed_out = self.experts(routed_in)
        out = self.shared_expert(hidden_states)
        out.add_(routed_out.reshape(router_scores.shape[1], -1, routed_out.shape[-1]).sum(dim=0))
        return out, router_logits


def builder(router_cls):
    def b():
        cfg = config()
        ffns = [Llama4TextMoe(router_cls) if (i + 1) % 2 == 0 else Llama4TextMLP() for i in range(L)]
        return build("Llama4ForConditionalGeneration", [("language_model", "Llama4ForCausalLM"), ("model", "Llama4TextModel")],
                     "Llama4TextDecoderLayer", "feed_forward", ffns, cfg)
    return b


class _Linear(nn.Linear):
    def __init__(self):
        super().__init__(D, E, bias=False)


VARIANTS = {"llama4-4x": builder(Llama4Router), "llama4-4.51": builder(_Linear)}
