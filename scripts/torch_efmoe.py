#!/usr/bin/python3
"""An independent PyTorch implementation of the efmoe model (SPEC §1), written as a PyTorch user would.

It reads a checkpoint folder (config.json + model.safetensors; safetensors parsed here with
struct/json/numpy because the `safetensors` package is not installed), pads a batch of sequences to
[B, T] and runs plain batched torch ops: attention with a [B, T, T] mask, a sparse per-expert
dispatch over the non-padding rows, and (for training) the SPEC losses with autograd.

It serves three purposes:
  * the reference that scripts/make-model-fixture.py uses to write test/fixtures/efmoe-* ;
  * the PyTorch peer of the capture benchmark (bench/capture.ts):
        /usr/bin/python3 scripts/torch_efmoe.py --model DIR --bench-json inputs.json \
            [--threads 2] [--batch 16] [--repeat 3] [--warmup 1] [--train]
    prints one JSON line {"tokens": ..., "seconds": ..., "tokens_per_s": ...} on stdout
    (best of --repeat timed passes over all sequences, in batches of --batch sequences, routing only,
    no logits; with --train, one forward+backward of the full training loss per batch instead);
  * a quick manual check: --model DIR --inputs-json inputs.json prints routing of layer 0.

inputs.json (bench and manual check): {"sequences": [{"ids": [...], "imagePart": [...],
"patches": [...]}, ...]} where, per position, ids is the token id or -1 for an image patch,
imagePart is the index of the image the position belongs to or -1, and patches is the flat list of
the patch vectors (number of patch positions x P*P*C values, in position order). "modality"
(0 special, 1 text, 2 image) is optional: it is only used for training targets; when absent,
text = ids >= 0 except the first and the last position.
"""
import argparse
import json
import math
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

MODALITY_SPECIAL, MODALITY_TEXT, MODALITY_IMAGE = 0, 1, 2

# ---------------------------------------------------------------------------------------------
# safetensors, by hand
_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I32": np.int32, "I64": np.int64}


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        buf = raw[base + b:base + e]
        if info["dtype"] == "BF16":
            u = np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16
            arr = u.view(np.float32)
        else:
            arr = np.frombuffer(buf, dtype=np.dtype(_DTYPES[info["dtype"]]).newbyteorder("<"))
        out[name] = arr.reshape(info["shape"]).copy()
    return out


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, np.ndarray); written as F32 (SPEC: F32 written)."""
    header = {}
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    off = 0
    blobs = []
    for name, arr in tensors:
        a = np.ascontiguousarray(arr, dtype="<f4")
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        off += a.nbytes
        blobs.append(a.tobytes())
    js = json.dumps(header, separators=(",", ":"))
    js += " " * ((8 - (8 + len(js)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(js)))
        f.write(js.encode("utf-8"))
        for b in blobs:
            f.write(b)


def load_checkpoint(model_dir, dtype=torch.float32):
    with open(f"{model_dir}/config.json") as f:
        config = json.load(f)
    arrays = read_safetensors(f"{model_dir}/model.safetensors")
    params = {k: torch.tensor(v, dtype=dtype) for k, v in arrays.items()}
    return config, params


# ---------------------------------------------------------------------------------------------
# the model
def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Batch:
    """Sequences of different lengths padded to [B, T] (the usual PyTorch way)."""

    def __init__(self, seqs, patch_dim, dtype):
        B = len(seqs)
        T = max(len(s["ids"]) for s in seqs)
        self.B, self.T = B, T
        self.lengths = [len(s["ids"]) for s in seqs]
        ids = torch.zeros(B, T, dtype=torch.long)
        img = torch.full((B, T), -1, dtype=torch.long)
        valid = torch.zeros(B, T, dtype=torch.bool)
        targets = torch.full((B, T), -100, dtype=torch.long)
        patches = []
        for b, s in enumerate(seqs):
            n = len(s["ids"])
            sid = torch.tensor(s["ids"], dtype=torch.long)
            ids[b, :n] = sid
            img[b, :n] = torch.tensor(s["imagePart"], dtype=torch.long)
            valid[b, :n] = True
            mod = s.get("modality")
            if mod is None:
                mod = [MODALITY_TEXT if (i > 0 and i < n - 1 and s["ids"][i] >= 0) else
                       (MODALITY_IMAGE if s["ids"][i] < 0 else MODALITY_SPECIAL) for i in range(n)]
            mod = torch.tensor(mod, dtype=torch.long)
            # position t predicts ids[t+1] when t+1 is a text token or the final <eos>
            nxt = torch.arange(1, n)
            is_target = ((mod[1:] == MODALITY_TEXT) | (nxt == n - 1)) & (sid[1:] >= 0)
            targets[b, :n - 1] = torch.where(is_target, sid[1:], torch.full_like(sid[1:], -100))
            if len(s["patches"]):
                patches.append(torch.tensor(s["patches"], dtype=dtype).view(-1, patch_dim))
        self.is_patch = valid & (ids < 0)
        self.ids = ids.clamp(min=0)
        self.patches = torch.cat(patches) if patches else torch.zeros(0, patch_dim, dtype=dtype)
        self.valid = valid
        self.targets = targets
        # efmoe mask: s <= t, or s and t in the same image; padded keys never attended
        t_idx = torch.arange(T)
        causal = t_idx[None, :, None] >= t_idx[None, None, :]
        same_img = (img[:, :, None] == img[:, None, :]) & (img[:, :, None] >= 0)
        self.mask = (causal | same_img) & valid[:, None, :]


class EfMoE:
    def __init__(self, config, params):
        self.c = config
        self.p = params
        self.L = config["num_hidden_layers"]
        self.C = config["hidden_size"]
        self.H = config["num_attention_heads"]
        self.hd = self.C // self.H
        self.E = config["num_local_experts"]
        self.K = config["num_experts_per_tok"]
        self.eps = config["rms_norm_eps"]
        self.patch_dim = config["patch_size"] ** 2 * config["num_channels"]

    def rope(self, T, dtype):
        hd = self.hd
        inv_freq = 1.0 / (self.c["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
        ang = torch.arange(T, dtype=torch.float64)[:, None] * inv_freq[None, :]
        emb = torch.cat((ang, ang), dim=-1)
        return emb.cos().to(dtype), emb.sin().to(dtype)

    def forward(self, batch, want_logits=False, want_loss=False):
        p, c = self.p, self.c
        B, T, C, H, hd, E, K = batch.B, batch.T, self.C, self.H, self.hd, self.E, self.K
        dtype = p["embed_tokens.weight"].dtype
        x = p["embed_tokens.weight"][batch.ids]
        if batch.patches.shape[0]:
            x = x.clone()
            x[batch.is_patch] = F.linear(batch.patches, p["patch_embed.weight"], p["patch_embed.bias"])
        cos, sin = self.rope(T, dtype)
        mask = batch.mask[:, None, :, :]
        valid_flat = batch.valid.view(-1)
        routing = []
        aux_total = x.new_zeros(())
        z_total = x.new_zeros(())
        for i in range(self.L):
            pre = f"layers.{i}."
            y = rms_norm(x, p[pre + "input_layernorm.weight"], self.eps)
            q = F.linear(y, p[pre + "self_attn.q_proj.weight"]).view(B, T, H, hd)
            k = F.linear(y, p[pre + "self_attn.k_proj.weight"]).view(B, T, H, hd)
            v = F.linear(y, p[pre + "self_attn.v_proj.weight"]).view(B, T, H, hd)
            if c["qk_norm"]:
                q = rms_norm(q, p[pre + "self_attn.q_norm.weight"], self.eps)
                k = rms_norm(k, p[pre + "self_attn.k_norm.weight"], self.eps)
            q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, H, T, hd]
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            scores = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
            scores = scores.masked_fill(~mask, float("-inf"))
            att = torch.softmax(scores, dim=-1)
            o = (att @ v).transpose(1, 2).reshape(B, T, C)
            h = x + F.linear(o, p[pre + "self_attn.o_proj.weight"])

            # MoE over the real (non-padding) rows only
            y2 = rms_norm(h, p[pre + "post_attention_layernorm.weight"], self.eps).view(B * T, C)[valid_flat]
            router_logits = F.linear(y2, p[pre + "block_sparse_moe.gate.weight"])
            probs = torch.softmax(router_logits, dim=-1)
            # top-k, descending, ties to the lower index: a stable descending sort
            _, order = torch.sort(probs, dim=-1, descending=True, stable=True)
            top = order[:, :K]
            gates = probs.gather(1, top)
            if c["norm_topk_prob"]:
                gates = gates / gates.sum(-1, keepdim=True)
            moe = torch.zeros_like(y2)
            for e in range(E):
                rows, slot = torch.where(top == e)
                if rows.numel() == 0:
                    continue
                xe = y2[rows]
                pe = f"{pre}block_sparse_moe.experts.{e}."
                ye = F.linear(F.silu(F.linear(xe, p[pe + "w1.weight"])) * F.linear(xe, p[pe + "w3.weight"]), p[pe + "w2.weight"])
                moe = moe.index_add(0, rows, ye * gates[rows, slot].unsqueeze(-1))
            full = torch.zeros(B * T, C, dtype=dtype)
            full = full.index_put((valid_flat.nonzero().squeeze(1),), moe)
            x = h + full.view(B, T, C)
            routing.append({"experts": top, "gates": gates, "probs": probs})
            if want_loss:
                n = y2.shape[0]
                f = F.one_hot(top, E).sum(dim=(0, 1)).to(dtype).detach() / (n * K)
                P = probs.mean(0)
                aux_total = aux_total + E * (f * P).sum()
                lse = torch.logsumexp(router_logits, dim=-1)
                z_total = z_total + (lse ** 2).mean()
        out = {"routing": routing}
        if want_logits or want_loss:
            xf = rms_norm(x, p["norm.weight"], self.eps)
            logits = F.linear(xf, p["lm_head.weight"])
            out["logits"] = logits.view(B * T, -1)[valid_flat]
            if want_loss:
                ce = F.cross_entropy(logits.view(B * T, -1), batch.targets.view(-1), ignore_index=-100)
                if (batch.targets >= 0).sum() == 0:
                    ce = logits.new_zeros(())
                aux = c["router_aux_loss_coef"] * aux_total
                z = c["router_z_loss_coef"] * z_total
                out.update(loss=ce + aux + z, ce=ce, aux=aux, z=z, aux_raw=aux_total, z_raw=z_total,
                           targets=int((batch.targets >= 0).sum()))
        return out


# ---------------------------------------------------------------------------------------------
# CLI
def read_inputs(path):
    with open(path) as f:
        data = json.load(f)
    return data["sequences"] if isinstance(data, dict) else data


def bench(args):
    torch.set_num_threads(args.threads)
    config, params = load_checkpoint(args.model)
    model = EfMoE(config, params)
    seqs = read_inputs(args.bench_json)
    batches = [Batch(seqs[i:i + args.batch], model.patch_dim, torch.float32) for i in range(0, len(seqs), args.batch)]
    tokens = sum(len(s["ids"]) for s in seqs)
    if args.train:
        for v in params.values():
            v.requires_grad_(True)

    def one_pass():
        if args.train:
            for b in batches:
                for v in params.values():
                    v.grad = None
                model.forward(b, want_loss=True)["loss"].backward()
        else:
            with torch.inference_mode():
                for b in batches:
                    r = model.forward(b)
                    # what capture keeps: experts and gates per layer, as numpy
                    for layer in r["routing"]:
                        layer["experts"].numpy()
                        layer["gates"].numpy()

    for _ in range(args.warmup):
        one_pass()
    best = float("inf")
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        one_pass()
        best = min(best, time.perf_counter() - t0)
    print(json.dumps({"tokens": tokens, "seconds": best, "tokens_per_s": tokens / best,
                      "threads": args.threads, "batch": args.batch, "mode": "train" if args.train else "capture"}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="checkpoint folder (config.json + model.safetensors)")
    ap.add_argument("--bench-json", help="inputs.json to time the batched forward on")
    ap.add_argument("--inputs-json", help="inputs.json to print the routing of")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16, help="sequences per batch")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--train", action="store_true", help="time forward+backward of the training loss instead")
    args = ap.parse_args()
    if args.bench_json:
        bench(args)
    elif args.inputs_json:
        config, params = load_checkpoint(args.model)
        model = EfMoE(config, params)
        with torch.inference_mode():
            r = model.forward(Batch(read_inputs(args.inputs_json), model.patch_dim, torch.float32))
        print(json.dumps({"layer0_experts": r["routing"][0]["experts"].tolist()}))
    else:
        ap.error("give --bench-json or --inputs-json")


if __name__ == "__main__":
    main()
