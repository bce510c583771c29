"""GLM-4.5 (Glm4Moe), after transformers src/transformers/models/glm4_moe/modeling_glm4_moe.py: the
DeepSeek-V3 routing (sigmoid, e_score_correction_bias, n_group / topk_group, norm_topk_prob,
routed_scaling_factor) under Glm4Moe names - Glm4MoeTopkRouter returns (topk_indices, topk_weights)
in 4.x, router_logits only in 5.x where Glm4MoeMoE.route_tokens_to_experts picks the experts.
See deepseek_v3.py for the shared code.
"""
from deepseek_v3 import K, variant  # noqa: F401

VARIANTS = {
    "glm4_moe-4x": variant("Glm4Moe", "glm4_moe", 4, 2, 1),
    "glm4_moe-5x": variant("Glm4Moe", "glm4_moe", 5, 2, 1),
}
