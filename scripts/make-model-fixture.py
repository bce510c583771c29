#!/usr/bin/python3
"""Write the committed efmoe fixtures that test/model/*.test.ts check the TypeScript model against.

    /usr/bin/python3 scripts/make-model-fixture.py

For three tiny random configs (K=2 with norm_topk_prob; K=1 without; K=2 without, no QK-norm, 4 heads), writes
test/fixtures/efmoe-<name>/{config.json, tokenizer.json, model.safetensors, expected.safetensors} and the shared
inputs test/fixtures/efmoe-inputs.json (mixed text+image sequences of different lengths, one with two
adjacent images). expected.safetensors holds, from scripts/torch_efmoe.py run in float64 with torch
autograd: logits [N, V] of the real rows (sequences concatenated), per layer experts/gates/probs
[N, K|E] (experts as exact small floats), loss/ce/aux/z/aux_raw/z_raw/targets [1], and the gradient of
the loss w.r.t. every parameter as grad.<tensor name>.

Weights are drawn with scales larger than a training init (router logits well apart), and the seed is
advanced until every expert of every layer gets a target row (so it has a gradient), every row's k-th and (k+1)-th router probs differ by a clear margin and the float32 run
routes exactly like the float64 one, so the TypeScript float32 model must reproduce the routing exactly.
"""
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_efmoe import Batch, EfMoE, write_safetensors  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "test", "fixtures")

BASE = dict(
    model_type="efmoe", vocab_size=24, hidden_size=16, intermediate_size=12, num_hidden_layers=2,
    num_attention_heads=2, num_local_experts=4, num_experts_per_tok=2, norm_topk_prob=True,
    rms_norm_eps=1e-5, rope_theta=10000.0, qk_norm=True, image_size=8, patch_size=4, num_channels=3,
    max_position_embeddings=64, router_aux_loss_coef=0.3, router_z_loss_coef=0.05,
    bos_token_id=1, eos_token_id=2, pad_token_id=0, unk_token_id=3,
)
VARIANTS = {
    "tiny-k2": dict(num_experts_per_tok=2, norm_topk_prob=True),
    "tiny-k1": dict(num_experts_per_tok=1, norm_topk_prob=False),
    # no QK-norm, K=2 without renormalisation, 4 heads of size 4
    "tiny-plain": dict(num_experts_per_tok=2, norm_topk_prob=False, qk_norm=False, num_attention_heads=4),
}
MARGIN = 3e-4


def param_specs(c):
    C, hd, E, F, V = c["hidden_size"], c["hidden_size"] // c["num_attention_heads"], c["num_local_experts"], c["intermediate_size"], c["vocab_size"]
    pd = c["patch_size"] ** 2 * c["num_channels"]
    specs = [("embed_tokens.weight", [V, C]), ("patch_embed.weight", [C, pd]), ("patch_embed.bias", [C])]
    for i in range(c["num_hidden_layers"]):
        p = f"layers.{i}."
        specs.append((p + "input_layernorm.weight", [C]))
        for m in "qkvo":
            specs.append((f"{p}self_attn.{m}_proj.weight", [C, C]))
        specs += [(p + "self_attn.q_norm.weight", [hd]), (p + "self_attn.k_norm.weight", [hd]),
                  (p + "post_attention_layernorm.weight", [C]), (p + "block_sparse_moe.gate.weight", [E, C])]
        for e in range(E):
            q = f"{p}block_sparse_moe.experts.{e}."
            specs += [(q + "w1.weight", [F, C]), (q + "w3.weight", [F, C]), (q + "w2.weight", [C, F])]
    specs += [("norm.weight", [C]), ("lm_head.weight", [V, C])]
    return specs


def random_weights(c, rng):
    out = []
    for name, shape in param_specs(c):
        if name.endswith("norm.weight") or name.endswith("layernorm.weight"):
            a = 1.0 + 0.2 * rng.standard_normal(shape)
        elif name.endswith(".bias"):
            a = 0.1 * rng.standard_normal(shape)
        elif "gate.weight" in name:
            a = 0.8 * rng.standard_normal(shape)
        else:
            a = rng.standard_normal(shape) / math.sqrt(shape[-1])
        out.append((name, a.astype(np.float32)))
    return out


def make_inputs(c, rng):
    """Sequences of parts; ids -1 = image patch. Modality 0 special, 1 text, 2 image."""
    npatch = (c["image_size"] // c["patch_size"]) ** 2
    pd = c["patch_size"] ** 2 * c["num_channels"]
    layouts = [
        [("text", 5), ("image", 1), ("text", 3)],
        [("image", 1), ("image", 1), ("text", 2)],
        [("text", 6)],
        [("image", 1)],
    ]
    seqs = []
    for layout in layouts:
        ids, mod, img, patches = [c["bos_token_id"]], [0], [-1], []
        nimg = 0
        for kind, n in layout:
            if kind == "text":
                for _ in range(n):
                    ids.append(int(rng.integers(3, c["vocab_size"])))
                    mod.append(1)
                    img.append(-1)
            else:
                for _ in range(npatch):
                    ids.append(-1)
                    mod.append(2)
                    img.append(nimg)
                # values as the image preprocessing gives them: in [-1, 1]
                patches.extend(np.round(rng.uniform(-1, 1, size=npatch * pd), 4).tolist())
                nimg += 1
        ids.append(c["eos_token_id"])
        mod.append(0)
        img.append(-1)
        seqs.append({"ids": ids, "modality": mod, "imagePart": img, "patches": patches})
    return seqs


def run(c, weights, seqs, dtype, grad):
    params = {n: torch.tensor(a, dtype=dtype) for n, a in weights}
    for v in params.values():
        v.requires_grad_(grad)
    model = EfMoE(c, params)
    out = model.forward(Batch(seqs, model.patch_dim, dtype), want_logits=True, want_loss=True)
    if grad:
        out["loss"].backward()
    return model, params, out


def min_margin(out, K):
    m = float("inf")
    for layer in out["routing"]:
        s, _ = torch.sort(layer["probs"].detach(), dim=-1, descending=True)
        m = min(m, float((s[:, K - 1] - s[:, K]).min()))
    return m


def main():
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    seqs = make_inputs(BASE, np.random.default_rng(1234))
    with open(os.path.join(OUT, "efmoe-inputs.json"), "w") as f:
        json.dump({"sequences": seqs}, f)
    for vname, over in VARIANTS.items():
        c = dict(BASE, **over)
        K = c["num_experts_per_tok"]
        seed = 100
        while True:
            weights = random_weights(c, np.random.default_rng(seed))
            _, _, o64 = run(c, weights, seqs, torch.float64, grad=False)
            _, _, o32 = run(c, weights, seqs, torch.float32, grad=False)
            same = all(torch.equal(a["experts"], b["experts"]) for a, b in zip(o64["routing"], o32["routing"]))
            # every expert of every layer serves a target row, so every expert weight has a gradient to check
            b = Batch(seqs, (c["patch_size"] ** 2) * c["num_channels"], torch.float64)
            is_target = (b.targets.view(-1) >= 0)[b.valid.view(-1)]
            all_used = all(len(torch.unique(layer["experts"][is_target])) == c["num_local_experts"] for layer in o64["routing"])
            if same and all_used and min_margin(o64, K) > MARGIN:
                break
            seed += 1
        model, params, out = run(c, weights, seqs, torch.float64, grad=True)
        d = os.path.join(OUT, f"efmoe-{vname}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(c, f, indent=2)
        with open(os.path.join(d, "tokenizer.json"), "w") as f:
            vocab = ["<pad>", "<bos>", "<eos>", "<unk>"] + [f"w{i}" for i in range(4, c["vocab_size"])]
            json.dump({"type": "word", "vocab": vocab}, f)
        write_safetensors(os.path.join(d, "model.safetensors"), weights, {"format": "pt", "producer": "make-model-fixture.py"})
        exp = [("logits", out["logits"].detach().numpy())]
        for i, layer in enumerate(out["routing"]):
            exp += [(f"layers.{i}.experts", layer["experts"].numpy().astype(np.float32)),
                    (f"layers.{i}.gates", layer["gates"].detach().numpy()),
                    (f"layers.{i}.probs", layer["probs"].detach().numpy())]
        for k in ("loss", "ce", "aux", "z", "aux_raw", "z_raw"):
            exp.append((k, np.array([float(out[k])])))
        exp.append(("targets", np.array([out["targets"]], dtype=np.float32)))
        for name, _ in weights:
            g = params[name].grad  # None: unused (q_norm/k_norm without qk_norm), the gradient is zero
            exp.append(("grad." + name, g.numpy() if g is not None else np.zeros_like(params[name].detach().numpy())))
        write_safetensors(os.path.join(d, "expected.safetensors"), exp, {"seed": seed, "producer": "make-model-fixture.py"})
        print(f"efmoe-{vname}: seed {seed}, loss {float(out['loss']):.6f} (ce {float(out['ce']):.6f}, aux {float(out['aux']):.6f}, z {float(out['z']):.6f}), "
              f"N {out['logits'].shape[0]}, targets {out['targets']}, min margin {min_margin(out, K):.2e}")


if __name__ == "__main__":
    main()
