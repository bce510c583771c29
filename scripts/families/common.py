"""Scaffolding shared by the family fixtures: a tiny decoder (embedding, a token-mixing stand-in for
attention, one feed-forward block per layer) whose containers carry the real transformers names
(`model.layers.N.mlp`, `language_model.model.layers.N.feed_forward`, `transformer.blocks.N.ffn`, ...),
and `Dispatch`, which records inside each MoE block the (token, expert, weight) triples the block
actually multiplied expert outputs by - the ground truth the fixtures' expected.json is made of,
taken independently of the router outputs the capture helper reads.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

D, V = 16, 64  # hidden size, vocabulary
PAD, BOS, IMG_START, IMG_END, IMG = 0, 1, 3, 4, 5


class Config:
    """A stand-in for PretrainedConfig: attribute access plus to_dict()."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def to_dict(self):
        return {k: (v.to_dict() if isinstance(v, Config) else v) for k, v in self.__dict__.items()}


class Dispatch:
    """What one MoE block sent where in the current forward pass: flat token -> [(expert, weight)]."""

    def __init__(self):
        self.pairs = {}

    def clear(self):
        self.pairs = {}

    def add(self, token_idx, expert, weight):
        for t, w in zip(token_idx.reshape(-1).tolist(), weight.reshape(-1).float().tolist()):
            self.pairs.setdefault(int(t), []).append((int(expert), float(w)))


def dispatch_loop(rec, hidden_states, top_k_index, top_k_weights, num_experts, expert_fn):
    """The experts loop of MixtralSparseMoeBlock.forward / MixtralExperts.forward (4.x and 5.x):
    one_hot mask, the experts hit, `torch.where` per expert, weighted index_add_. Records what it uses."""
    final = torch.zeros_like(hidden_states)
    expert_mask = F.one_hot(top_k_index.long(), num_classes=num_experts).permute(2, 1, 0)
    expert_hit = torch.greater(expert_mask.sum(dim=(-1, -2)), 0).nonzero()
    for expert_idx in expert_hit:
        e = int(expert_idx[0])
        idx, top_x = torch.where(expert_mask[e])
        w = top_k_weights[top_x, idx, None]
        rec.add(top_x, e, w)
        final.index_add_(0, top_x, (expert_fn(e, hidden_states[top_x]) * w).to(hidden_states.dtype))
    return final


class MLP(nn.Module):
    """A SwiGLU MLP (gate_proj / up_proj / down_proj), as the families' dense and shared experts."""

    def __init__(self, inter=24):
        super().__init__()
        self.gate_proj = nn.Linear(D, inter, bias=False)
        self.up_proj = nn.Linear(D, inter, bias=False)
        self.down_proj = nn.Linear(inter, D, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class FusedExperts(nn.Module):
    """5.x-style experts: stacked gate_up_proj [E, 2I, D] and down_proj [E, D, I] parameters."""

    def __init__(self, num_experts, inter=24):
        super().__init__()
        self.num_experts = num_experts
        self.gate_up_proj = nn.Parameter(torch.randn(num_experts, 2 * inter, D) * 0.3)
        self.down_proj = nn.Parameter(torch.randn(num_experts, D, inter) * 0.3)

    def one(self, e, x):
        gate, up = F.linear(x, self.gate_up_proj[e]).chunk(2, dim=-1)
        return F.linear(F.silu(gate) * up, self.down_proj[e])


class Mixer(nn.Module):
    """Stands in for self-attention: mixes each token with the running mean of those before it."""

    def __init__(self):
        super().__init__()
        self.o_proj = nn.Linear(D, D)

    def forward(self, h):
        c = torch.cumsum(h, dim=1) / torch.arange(1, h.shape[1] + 1, dtype=h.dtype)[None, :, None]
        return torch.tanh(self.o_proj(c))


def named(name, base=nn.Module):
    """A class with a real transformers name (containers whose code does not matter here)."""
    return type(name, (base,), {})


def build(root_cls, path, layer_cls, ffn_attr, ffns, config, embed_attr="embed_tokens"):
    """root (class root_cls) -> path of container names (e.g. ["model"]) -> `layers` of layer_cls,
    each with `self_attn` and `ffn_attr` = ffns[i]. Returns the root module; forward(input_ids)."""
    root = named(root_cls)()
    root.config = config
    node = root
    for i, (attr, cls) in enumerate(path):
        child = named(cls)()
        setattr(node, attr, child)
        node = child
    node.add_module(embed_attr, nn.Embedding(V, D))
    layers = nn.ModuleList()
    for f in ffns:
        layer = named(layer_cls)()
        layer.self_attn = Mixer()
        layer.add_module(ffn_attr, f)
        layers.append(layer)
    list_name = "blocks" if path and path[-1][0] == "transformer" else "layers"
    node.add_module(list_name, layers)

    def forward(input_ids, attention_mask=None):
        h = getattr(node, embed_attr)(input_ids)
        for layer in layers:
            h = h + layer.self_attn(h)
            out = getattr(layer, ffn_attr)(h)
            h = h + (out[0] if isinstance(out, tuple) else out)
        return h

    root.forward = forward
    root.moe_blocks = {i: f for i, f in enumerate(ffns) if hasattr(f, "dispatch")}
    return root
