"""Make the per-family capture fixtures under test/fixtures/families/ (or OUT_DIR).

usage: /usr/bin/python3 scripts/families/make_family_fixtures.py [--out OUT_DIR] [family or variant ...]

For every variant (one module per family in this folder, each imitating its family's router and MoE
block from transformers' own modeling file, cited at its top): build a tiny random model, run two
batches through it inside python/moescope_capture.py's RoutingCapture, and write
  OUT_DIR/<variant>/capture/        what `moescope import hf` reads (manifest + safetensors [+ PNGs])
  OUT_DIR/<variant>/expected.json   counts per (decoder layer, expert, modality) under `all` and
                                    `top1`, gate sums per (layer, expert), from what each block
                                    dispatched (common.Dispatch), never from the helper's records.
"""
import importlib
import json
import os
import shutil
import sys
import zlib

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "python"))
from common import BOS, IMG, IMG_END, IMG_START, PAD, V  # noqa: E402
from moescope_capture import RoutingCapture  # noqa: E402

FAMILIES = ["mixtral", "qwen2_moe", "qwen3_moe", "qwen3_vl_moe", "olmoe", "deepseek_v2", "deepseek_v3", "glm4_moe", "minimax_m2", "llama4", "gpt_oss", "phimoe", "granitemoe", "dbrx", "jamba"]
VOCAB = ["<pad>", "<s>", "</s>", "<img>", "</img>", "<image>"] + [f"w{i}" for i in range(6, V)]


def modality(tok):
    if tok in (BOS, IMG_START, IMG_END):
        return "special"
    return "image" if tok == IMG else "text"


def default_batches(g):
    def seq(n_text, n_img, n_text2):
        t = lambda n: torch.randint(6, V, (n,), generator=g).tolist()  # noqa: E731
        return [BOS] + t(n_text) + [IMG_START] + [IMG] * n_img + [IMG_END] + t(n_text2)
    return [{"seqs": [seq(3, 4, 2), seq(2, 3, 1)]}, {"seqs": [seq(4, 6, 5)]}]


def pad(seqs):
    S = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), S), PAD, dtype=torch.long)
    mask = torch.zeros((len(seqs), S), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
    return ids, mask


def plain_topk(logits, k):
    return torch.topk(torch.softmax(logits.float(), dim=-1), k, dim=-1)[1]


def run(variant, builder, mod, out_root):
    torch.manual_seed(zlib.crc32(variant.encode()))
    model = builder().eval()
    out = os.path.join(out_root, variant)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    g = torch.Generator().manual_seed(7)
    batches = mod.batches(g) if hasattr(mod, "batches") else default_batches(g)
    K = getattr(mod, "K", 2)
    exp = {"all": {}, "top1": {}, "gate_sum": {}, "tokens": {}, "rows": 0, "samples": 0, "layers": sorted(model.moe_blocks),
           "plain_topk_mismatch": 0, "family_module": f"scripts/families/{mod.__name__}.py", "token_strings": [], "image_grids": []}
    kw = dict(special_ids=[BOS, PAD], image_token_id=IMG, image_special_ids=[IMG_START, IMG_END])
    kw.update(getattr(mod, "CAPTURE_KW", {}))
    with RoutingCapture(model, os.path.join(out, "capture"), **kw) as cap:
        for bi, batch in enumerate(batches):
            ids, mask = pad(batch["seqs"])
            toks = [[VOCAB[i] for i in row] for row in ids.tolist()]
            extra = {k: v for k, v in batch.items() if k not in ("seqs", "image_grids_expected")}
            cap.inputs(ids, attention_mask=mask, texts=[f"{variant} batch {bi} seq {i}" for i in range(len(ids))],
                       tokens=toks, **extra)
            for blk in model.moe_blocks.values():
                blk.dispatch.clear()
            with torch.no_grad():
                model(ids, attention_mask=mask)
            flat_ids, flat_mask = ids.reshape(-1).tolist(), mask.reshape(-1).tolist()
            for i in range(len(ids)):
                exp["token_strings"].append([t for t, m in zip(toks[i], mask[i].tolist()) if m])
            exp["image_grids"].extend(batch.get("image_grids_expected", [None] * len(ids)))
            exp["samples"] += len(ids)
            for tok, m in zip(flat_ids, flat_mask):
                if m:
                    exp["tokens"][modality(tok)] = exp["tokens"].get(modality(tok), 0) + 1
            for layer, blk in model.moe_blocks.items():
                logits = getattr(blk.dispatch, "logits", None)
                for t, (tok, m) in enumerate(zip(flat_ids, flat_mask)):
                    if not m:
                        continue
                    md = modality(tok)
                    pairs = blk.dispatch.pairs.get(t, [])
                    if len(pairs) != K:
                        raise SystemExit(f"{variant}: layer {layer} token {t} went to {len(pairs)} experts, expected {K}")
                    exp["rows"] += 1
                    top = max(pairs, key=lambda p: p[1])[0]
                    bump(exp["top1"], f"{layer}/{top}/{md}", 1)
                    for e, w in pairs:
                        bump(exp["all"], f"{layer}/{e}/{md}", 1)
                        bump(exp["gate_sum"], f"{layer}/{e}", w)
                    if logits is not None:
                        plain = set(plain_topk(logits.reshape(-1, logits.shape[-1])[t], K).tolist())
                        exp["plain_topk_mismatch"] += plain != {e for e, _ in pairs}
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(exp, f, indent=1, sort_keys=True)
    return exp


def run_moellava(out_root, keep_dump=False):
    """MoE-LLaVA: the dump (scripts/families/moellava.py) -> convert_moellava -> capture folder."""
    import tempfile
    import moellava
    from moescope_capture import convert_moellava
    out = os.path.join(out_root, "moellava")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    tmpd = tempfile.mkdtemp()
    dump = os.path.join(out if keep_dump else tmpd, "sciqa_gating.pt")
    data, truth, layers = moellava.make_dump(dump)
    convert_moellava(dump, os.path.join(out, "capture"), moe_layers=layers, num_layers=moellava.L,
                     image_patches=moellava.PATCHES, special_ids=[moellava.BOS])
    shutil.rmtree(tmpd, ignore_errors=True)
    exp = {"all": {}, "top1": {}, "gate_sum": {}, "tokens": {}, "rows": 0, "samples": len(data), "layers": layers,
           "plain_topk_mismatch": 0, "family_module": "scripts/families/moellava.py", "token_strings": [], "image_grids": []}
    for (key, v), t in zip(data.items(), truth):
        out_ids = v["output_ids"][0].tolist()
        rows = []
        for tok in out_ids:
            rows.extend(["image"] * moellava.PATCHES if tok == moellava.IMAGE_TOKEN_INDEX else ["special" if tok == moellava.BOS else "text"])
        rows = rows[:-1]  # the last generated token never went through the model
        exp["token_strings"].append(None)
        n_img = out_ids.count(moellava.IMAGE_TOKEN_INDEX)
        exp["image_grids"].append([[1, moellava.SIDE, moellava.SIDE]] * n_img if n_img else None)
        for md in rows:
            exp["tokens"][md] = exp["tokens"].get(md, 0) + 1
        for layer in layers:
            experts, gates = t[layer]
            if len(experts) != len(rows):
                raise SystemExit(f"moellava: layer {layer} routed {len(experts)} rows, expected {len(rows)}")
            for e, w, md in zip(experts, gates, rows):
                exp["rows"] += 1
                bump(exp["all"], f"{layer}/{e}/{md}", 1)
                bump(exp["top1"], f"{layer}/{e}/{md}", 1)
                bump(exp["gate_sum"], f"{layer}/{e}", w)
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(exp, f, indent=1, sort_keys=True)
    print(f"moellava: {exp['rows']} rows, layers {layers}")


def bump(d, k, v):
    d[k] = d.get(k, 0) + v


def main():
    args = sys.argv[1:]
    out_root = os.path.join(ROOT, "test", "fixtures", "families")
    if args[:1] == ["--out"]:
        out_root, args = args[1], args[2:]
    want = set(args)
    if not want or "moellava" in want:
        run_moellava(out_root, keep_dump="--keep-dump" in want)
    for fam in FAMILIES:
        mod = importlib.import_module(fam)
        for variant, builder in mod.VARIANTS.items():
            if want and variant not in want and fam not in want:
                continue
            exp = run(variant, builder, mod, out_root)
            print(f"{variant}: {exp['rows']} rows, layers {exp['layers']}, plain top-k differs on {exp['plain_topk_mismatch']}")


if __name__ == "__main__":
    main()
