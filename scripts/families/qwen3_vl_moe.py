"""Qwen3-VL-MoE (transformers 4.57), after src/transformers/models/qwen3_vl_moe/modeling_qwen3_vl_moe.py -
also the vision-language fixture: images, token strings and non-square patch grids.

Qwen3VLMoeTextSparseMoeBlock at model.language_model.layers.N.mlp: `gate` nn.Linear(hidden, num_experts)
returns logits; softmax(float) -> topk -> always renormalised; the weights are scattered into
router_weights [T, E] for Qwen3VLMoeTextExperts(hidden, router_weights, router_indices). Returns
(routed_out, router_logits). The vision tower (model.visual.blocks.N.mlp: linear_fc1 / linear_fc2)
has no router. Each image of grid image_grid_thw [t, h, w] patches becomes t*h*w / merge^2 image-pad
tokens (spatial_merge_size 2: a 2x2 patch block per token), in row-major order of the merged grid.
"""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from common import BOS, D, IMG, IMG_END, IMG_START, V, Config, Dispatch, FusedExperts, build, dispatch_loop, named

E, K, L, MERGE, PATCH = 8, 2, 3, 2, 16


class Qwen3VLMoeTextExperts(FusedExperts):
    def forward(self, hidden_states, routing_weights, router_indices):
        b = hidden_states.shape[0]
        x = hidden_states.reshape(-1, D)
        out = dispatch_loop(self.dispatch, x, router_indices, routing_weights.gather(1, router_indices), E, self.one)
        return out.reshape(b, -1, D)


class Qwen3VLMoeTextSparseMoeBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden_size, self.num_experts, self.top_k = D, E, K
        self.gate = nn.Linear(D, E, bias=False)
        self.experts = Qwen3VLMoeTextExperts(E)
        self.dispatch = self.experts.dispatch = Dispatch()

    def forward(self, hidden_states):
        batch_size = hidden_states.shape[0]
        hidden_states = hidden_states.reshape(-1, self.hidden_size)
        router_logits = self.gate(hidden_states)
        routing_weights = F.softmax(router_logits, dim=-1, dtype=torch.float)
        routing_weights, router_indices = torch.topk(routing_weights, self.top_k, dim=-1)
        routing_weights = routing_weights / routing_weights.sum(dim=-1, keepdim=True)
        routing_weights = routing_weights.to(hidden_states.dtype)
        router_weights = torch.zeros_like(router_logits).scatter_(1, router_indices, routing_weights)
        hidden_states = hidden_states.reshape(batch_size, -1, self.hidden_size)
        routed_out = self.experts(hidden_states, router_weights, router_indices)
        return routed_out, router_logits


class Qwen3VLMoeVisionMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear_fc1, self.linear_fc2 = nn.Linear(D, 32), nn.Linear(32, D)


def build_4x():
    text = Config(model_type="qwen3_vl_moe_text", num_hidden_layers=L, num_experts=E, num_experts_per_tok=K, norm_topk_prob=True,
                  decoder_sparse_step=1, mlp_only_layers=[], hidden_size=D)
    vision = Config(model_type="qwen3_vl_moe", depth=2, patch_size=PATCH, spatial_merge_size=MERGE)
    cfg = Config(model_type="qwen3_vl_moe", text_config=text, vision_config=vision, image_token_id=IMG,
                 vision_start_token_id=IMG_START, vision_end_token_id=IMG_END)
    root = build("Qwen3VLMoeForConditionalGeneration", [("model", "Qwen3VLMoeModel"), ("language_model", "Qwen3VLMoeTextModel")],
                 "Qwen3VLMoeTextDecoderLayer", "mlp", [Qwen3VLMoeTextSparseMoeBlock() for _ in range(L)], cfg)
    visual = named("Qwen3VLMoeVisionModel")()
    visual.blocks = nn.ModuleList()
    for _ in range(2):
        blk = named("Qwen3VLMoeVisionBlock")()
        blk.mlp = Qwen3VLMoeVisionMLP()
        visual.blocks.append(blk)
    root.model.visual = visual
    return root


def image(h, w, seed):
    """A uint8 picture of h x w patches (16 px each): stripes whose colour depends on the seed."""
    y, x = np.mgrid[0:h * PATCH, 0:w * PATCH]
    return np.stack([(x * 7 + seed * 40) % 256, (y * 5) % 256, ((x // PATCH + y // PATCH) * 60 + seed * 90) % 256], -1).astype(np.uint8)


def batches(g):
    def seq(grid, n_text):
        t = lambda n: torch.randint(6, V, (n,), generator=g).tolist()  # noqa: E731
        n_img = grid[0] * (grid[1] // MERGE) * (grid[2] // MERGE)
        return [BOS] + t(n_text) + [IMG_START] + [IMG] * n_img + [IMG_END] + t(3)

    g0, g1, g2 = [1, 4, 6], [1, 6, 4], [1, 4, 8]  # patch grids: wide, tall, wider
    merged = lambda gr: [gr[0], gr[1] // MERGE, gr[2] // MERGE]  # noqa: E731
    return [
        {"seqs": [seq(g0, 2), seq(g1, 4)], "images": [[image(4, 6, 0)], [image(6, 4, 1)]],
         "image_grid_thw": torch.tensor([g0, g1]), "image_grids_expected": [[merged(g0)], [merged(g1)]]},
        {"seqs": [seq(g2, 3)], "images": [image(4, 8, 2)], "image_grid_thw": torch.tensor([g2]),
         "image_grids_expected": [[merged(g2)]]},
    ]


VARIANTS = {"qwen3_vl_moe-4x": build_4x}
