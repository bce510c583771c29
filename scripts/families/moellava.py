"""MoE-LLaVA's routing dump, as `moellava/eval/model_vqa_science.py --return_gating_logit NAME` writes it
(github PKU-YuanGroup/MoE-LLaVA): get_gating_logit_by_hook (moellava/utils.py) puts a forward hook on
every nn.Linear whose name contains 'wg' - DeepSpeed's TopKGate.wg at
model.layers.N.mlp.deepspeed_moe.gate.wg, MoE in every other layer - keeping the LAST output
(`self.fea = fea_out.detach().cpu()`); generate() runs with use_cache=False, so the last output covers
the whole sequence but the final generated token. After each sample:
  all_gating_logits[cnt] = dict(gating_logit=[i.fea for i in fea_hooks], images=images.detach().cpu() | None,
                                input_ids=input_ids.detach().cpu(), output_ids=output_ids.detach().cpu())
and torch.save(all_gating_logits, f'{NAME}.pt'). input_ids/output_ids keep one IMAGE_TOKEN_INDEX (-200)
per image; the model routes `image_patches` rows for it (576 for CLIP-336; 16 here to stay small).
The gate is DeepSpeed's top2gating (deepspeed/moe/sharded_moe.py): softmax, expert 1 = argmax, expert 2 =
argmax of the logits plus Gumbel noise with expert 1 masked - recorded here per routed row.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from common import D, Dispatch

E, L, PATCHES, SIDE, PX = 4, 4, 16, 4, 8  # experts, decoder layers, patches per image (4x4), pixels per patch
IMAGE_TOKEN_INDEX, BOS, V = -200, 1, 40


def gumbel_rsample(shape, g):
    u = torch.rand(shape, generator=g).clamp(1e-9, 1 - 1e-9)
    return -torch.log(-torch.log(u))


class TopKGate(nn.Module):
    def __init__(self, g):
        super().__init__()
        self.wg = nn.Linear(D, E, bias=False).float()
        self.g = g
        self.dispatch = Dispatch()

    def forward(self, input):
        input_fp32 = input.float()
        logits = self.wg(input_fp32)
        gates = F.softmax(logits, dim=1)
        indices1_s = torch.argmax(gates, dim=1)
        mask1 = F.one_hot(indices1_s, num_classes=E)
        logits_w_noise = logits + gumbel_rsample(logits.shape, self.g)
        logits_except1 = logits_w_noise.masked_fill(mask1.bool(), float("-inf"))
        indices2_s = torch.argmax(logits_except1, dim=1)
        gates1_s = gates.gather(1, indices1_s[:, None])[:, 0]
        gates2_s = gates.gather(1, indices2_s[:, None])[:, 0]
        denom_s = torch.clamp(gates1_s + gates2_s, min=torch.finfo(gates2_s.dtype).eps)
        self.dispatch.clear()
        self.dispatch.first = (indices1_s.clone(), gates1_s.clone())
        return indices1_s, indices2_s, gates1_s / denom_s, gates2_s / denom_s


class MOELayer(nn.Module):
    def __init__(self, g):
        super().__init__()
        self.gate = TopKGate(g)
        self.experts = nn.ModuleList([nn.Linear(D, D) for _ in range(E)])

    def forward(self, x):
        i1, i2, w1, w2 = self.gate(x)
        out = torch.zeros_like(x)
        for e in range(E):
            for idx, w in ((i1, w1), (i2, w2)):
                m = idx == e
                if m.any():
                    out[m] += w[m, None] * self.experts[e](x[m])
        return out


class MoE(nn.Module):
    def __init__(self, g):
        super().__init__()
        self.deepspeed_moe = MOELayer(g)

    def forward(self, h):
        b, s, d = h.shape
        return self.deepspeed_moe(h.reshape(-1, d)).reshape(b, s, d)


class Layer(nn.Module):
    def __init__(self, mlp):
        super().__init__()
        self.self_attn = nn.Linear(D, D)
        self.mlp = mlp


class TinyMoELLaVA(nn.Module):
    """Embeddings; each -200 becomes PATCHES rows from a patch projector (the CLIP + mm_projector stand-in)."""

    def __init__(self, g):
        super().__init__()
        self.model = nn.Module()
        self.model.embed_tokens = nn.Embedding(V, D)
        self.model.mm_projector = nn.Linear(3 * PX * PX, D)
        self.model.layers = nn.ModuleList([Layer(MoE(g) if i % 2 == 1 else nn.Linear(D, D)) for i in range(L)])
        self.lm_head = nn.Linear(D, V)

    def embed(self, ids, image):
        parts = []
        for t in ids:
            if t == IMAGE_TOKEN_INDEX:
                patches = image.reshape(3, SIDE, PX, SIDE, PX).permute(1, 3, 0, 2, 4).reshape(PATCHES, -1)
                parts.append(self.model.mm_projector(patches.float()))
            else:
                parts.append(self.model.embed_tokens(torch.tensor([t])))
        return torch.cat(parts)[None]

    def forward(self, ids, image):
        h = self.embed(ids, image)
        for layer in self.model.layers:
            c = torch.cumsum(h, 1) / torch.arange(1, h.shape[1] + 1)[None, :, None]
            h = h + torch.tanh(layer.self_attn(c))
            h = h + layer.mlp(h)
        return self.lm_head(h)


class HookTool:
    def __init__(self):
        self.fea = None

    def hook_fun(self, module, fea_in, fea_out):
        self.fea = fea_out.detach().cpu()


def get_gating_logit_by_hook(model):
    fea_hooks = []
    for n, m in model.named_modules():
        if "wg" in n and isinstance(m, nn.Linear):
            cur_hook = HookTool()
            m.register_forward_hook(cur_hook.hook_fun)
            fea_hooks.append(cur_hook)
    return fea_hooks


def make_dump(path, seed=3):
    """Write the dump to `path`; return the truth per sample: for every routed row of the last
    forward pass, per MoE decoder layer, the argmax expert and its softmax gate."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = TinyMoELLaVA(g).eval()
    fea_hooks = get_gating_logit_by_hook(model)
    moe = {i: l.mlp.deepspeed_moe.gate for i, l in enumerate(model.model.layers) if isinstance(l.mlp, MoE)}
    all_gating_logits, truth = {}, []
    prompts = [[BOS, 7, 9, IMAGE_TOKEN_INDEX, 11, 12], [BOS, 5, 6, 8], [BOS, IMAGE_TOKEN_INDEX, 20, 21, 22]]
    for cnt, prompt in enumerate(prompts):
        has_image = IMAGE_TOKEN_INDEX in prompt
        images = (torch.rand((1, 3, SIDE * PX, SIDE * PX), generator=g) * 2 - 1).half() if has_image else None
        ids = list(prompt)
        with torch.inference_mode():
            for _ in range(4):  # generate(use_cache=False): the whole sequence every step
                logits = model(ids, images[0] if images is not None else None)
                ids.append(int(logits[0, -1].argmax()))
        input_ids = torch.tensor([prompt])
        output_ids = torch.tensor([ids])
        all_gating_logits[cnt] = dict(gating_logit=[i.fea for i in fea_hooks], images=images if images is None else images.detach().cpu(),
                                      input_ids=input_ids.detach().cpu(), output_ids=output_ids.detach().cpu())
        truth.append({layer: (gate.dispatch.first[0].tolist(), gate.dispatch.first[1].tolist()) for layer, gate in moe.items()})
    torch.save(all_gating_logits, path)
    return all_gating_logits, truth, sorted(moe)
