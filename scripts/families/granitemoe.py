"""Granite-MoE (transformers 4.x), after src/transformers/models/granitemoe/modeling_granitemoe.py.

GraniteMoeMoE at model.layers.N.block_sparse_moe with `router` GraniteMoeTopKGating (`layer` Linear):
top-k of the float logits, softmax over those k; returns (index_sorted_experts, batch_index,
batch_gates, expert_size, logits) - the flat (token, slot) pairs sorted by expert, their gates, and
tokens per expert as a Python list. GraniteMoeParallelExperts input_linear / output_linear run the
sorted tokens split by expert_size; outputs times batch_gates are index_add-ed back by batch_index.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from common import D, Config, Dispatch, build

E, K, L, I = 8, 2, 3, 24


class GraniteMoeTopKGating(nn.Module):
    def __init__(self, input_size, num_experts, top_k):
        super().__init__()
        self.num_experts, self.input_size, self.top_k = num_experts, input_size, top_k
        self.layer = nn.Linear(input_size, num_experts, bias=False)

    def forward(self, hidden_states):
        logits = self.layer(hidden_states).float()
        top_k_logits, top_k_indices = logits.topk(self.top_k, dim=1)
        top_k_gates = torch.softmax(top_k_logits, dim=1).type_as(hidden_states)
        zeros = torch.zeros([top_k_gates.size(0), self.num_experts], dtype=top_k_gates.dtype, device=top_k_gates.device)
        gates = zeros.scatter(1, top_k_indices, 1)
        expert_size = gates.long().sum(0)
        expert_size = expert_size.tolist()
        top_k_experts = top_k_indices.flatten()
        _, index_sorted_experts = top_k_experts.sort(0)
        batch_index = index_sorted_experts.div(self.top_k, rounding_mode="trunc")
        top_k_gates = top_k_gates.flatten()
        batch_gates = top_k_gates[index_sorted_experts]
        return index_sorted_experts, batch_index, batch_gates, expert_size, logits


class GraniteMoeParallelExperts(nn.Module):
    def __init__(self, num_experts, input_size, output_size):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_experts, output_size, input_size) * 0.3)
        self.num_experts, self.input_size, self.output_size = num_experts, input_size, output_size

    def forward(self, inputs, expert_size):
        input_list = inputs.split(expert_size, dim=0)
        return torch.cat([F.linear(input_list[i], self.weight[i]) for i in range(self.num_experts)], dim=0)


class GraniteMoeMoE(nn.Module):
    def __init__(self):
        super().__init__()
        self.input_size, self.hidden_size = D, I
        self.input_linear = GraniteMoeParallelExperts(E, D, 2 * I)
        self.output_linear = GraniteMoeParallelExperts(E, I, D)
        self.router = GraniteMoeTopKGating(input_size=D, num_experts=E, top_k=K)
        self.dispatch = Dispatch()

    def forward(self, layer_input):
        bsz, length, emb_size = layer_input.size()
        layer_input = layer_input.reshape(-1, emb_size)
        _, batch_index, batch_gates, expert_size, router_logits = self.router(layer_input)
        experts = torch.repeat_interleave(torch.arange(E), torch.tensor(expert_size))
        for e in range(E):
            sel = experts == e
            if sel.any():
                self.dispatch.add(batch_index[sel], e, batch_gates[sel])
        expert_inputs = layer_input[batch_index]
        hidden_states = self.input_linear(expert_inputs, expert_size)
        chunked = hidden_states.chunk(2, dim=-1)
        hidden_states = F.silu(chunked[0]) * chunked[1]
        expert_outputs = self.output_linear(hidden_states, expert_size)
        expert_outputs = expert_outputs * batch_gates[:, None]
        zeros = torch.zeros((bsz * length, self.input_size), dtype=expert_outputs.dtype, device=expert_outputs.device)
        layer_output = zeros.index_add(0, batch_index, expert_outputs)
        return layer_output.view(bsz, length, self.input_size), router_logits


def build_4x():
    cfg = Config(model_type="granitemoe", num_hidden_layers=L, num_local_experts=E, num_experts_per_tok=K, hidden_size=D)
    return build("GraniteMoeForCausalLM", [("model", "GraniteMoeModel")], "GraniteMoeDecoderLayer", "block_sparse_moe",
                 [GraniteMoeMoE() for _ in range(L)], cfg)


VARIANTS = {"granitemoe-4x": build_4x}
