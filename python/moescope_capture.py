"""Record where a PyTorch Mixture-of-Experts model routes its tokens, for `moescope import hf`.

One file, needs only torch and numpy (PIL only if you pass PIL images). Hooks the MoE blocks of a
Hugging Face transformers model (4.x or 5.x) and writes, per batch, a safetensors file (or a folder
of .npy files) plus a JSON manifest, `moescope_routing.json`. No pickles.

    from moescope_capture import RoutingCapture

    with RoutingCapture(model, "routing-out", special_ids=tokenizer.all_special_ids,
                        image_token_id=IMAGE_PAD_ID) as cap:
        for batch in batches:
            cap.inputs(batch["input_ids"], attention_mask=batch["attention_mask"],
                       texts=batch_texts, images=[pil_image],            # optional
                       tokens=tokenizer.convert_ids_to_tokens(batch["input_ids"][0]),
                       image_grid_thw=batch.get("image_grid_thw"))       # Qwen2/3-VL
            with torch.no_grad():
                model(**batch)
    # then:  moescope import hf routing-out --out my-trace

What is recorded is what the MoE block USED: the expert ids and weights it dispatched with. The
model's family (config `model_type`) decides where that is read (see FAMILIES below and the table in
docs/importers.md): the router's own (ids, weights) output where it returns them, the block's
`route_tokens_to_experts` (biased, group-limited routers: DeepSeek-V3 / GLM-4.5 / MiniMax-M2 in
transformers 5.x), Phi-3.5-MoE's `sparsemixer`, or - for 4.x blocks that do softmax + top-k inline
after a logits-only gate - the same torch calls the block makes, applied to the gate's logits.
A model whose family this file does not know is refused by name (pass `family="generic"` to accept
the generic rules for your own model, at your own risk).

`convert_moellava(pt, out_dir, moe_layers=...)` turns a MoE-LLaVA `--return_gating_logit` dump
into the same format.
"""

import json
import os
import re
import struct
import sys
import zlib

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["RoutingCapture", "find_moe_blocks", "save_safetensors", "convert_moellava", "png_bytes", "FAMILIES"]

MANIFEST = "moescope_routing.json"
_BLOCK_NAME = re.compile(r"(?:^|\.)(?:layers|blocks)\.(\d+)\.(?:mlp|block_sparse_moe|moe|feed_forward|ffn)$")
_ST_DTYPES = {
    np.dtype("float32"): "F32", np.dtype("float64"): "F64", np.dtype("float16"): "F16",
    np.dtype("int64"): "I64", np.dtype("int32"): "I32", np.dtype("int16"): "I16", np.dtype("int8"): "I8",
    np.dtype("uint8"): "U8", np.dtype("bool"): "BOOL",
}


class Family:
    """How one transformers MoE family routes, and where the helper reads it.

    inline: for 4.x blocks whose gate is a Linear returning logits and whose forward then does
      softmax(float) -> topk -> optional renormalisation inline: (renorm, config key or None).
      None: a logits-only gate is refused for this family (its top-k happens elsewhere).
    """

    def __init__(self, name, scoring, inline=None, source="", notes=""):
        self.name, self.scoring, self.inline, self.source, self.notes = name, scoring, inline, source, notes


_M = "src/transformers/models/"
FAMILIES = {
    "mixtral": Family("Mixtral", "softmax", inline=(True, None), source=_M + "mixtral/modeling_mixtral.py"),
    "qwen2_moe": Family("Qwen2-MoE", "softmax", inline=(None, "norm_topk_prob"), source=_M + "qwen2_moe/modeling_qwen2_moe.py"),
    "qwen3_moe": Family("Qwen3-MoE", "softmax", inline=(None, "norm_topk_prob"), source=_M + "qwen3_moe/modeling_qwen3_moe.py"),
    "qwen3_vl_moe": Family("Qwen3-VL-MoE", "softmax", inline=(True, None), source=_M + "qwen3_vl_moe/modeling_qwen3_vl_moe.py"),
    "olmoe": Family("OLMoE", "softmax", inline=(None, "norm_topk_prob"), source=_M + "olmoe/modeling_olmoe.py"),
    "jamba": Family("Jamba", "softmax", inline=(False, None), source=_M + "jamba/modeling_jamba.py"),
    "deepseek_v2": Family("DeepSeek-V2", "softmax", source=_M + "deepseek_v2/modeling_deepseek_v2.py"),
    "deepseek_v3": Family("DeepSeek-V3", "sigmoid", source=_M + "deepseek_v3/modeling_deepseek_v3.py"),
    "glm4_moe": Family("GLM-4.5", "sigmoid", source=_M + "glm4_moe/modeling_glm4_moe.py"),
    "minimax_m2": Family("MiniMax-M2", "sigmoid", source=_M + "minimax_m2/modeling_minimax_m2.py"),
    "llama4": Family("Llama-4", "sigmoid", source=_M + "llama4/modeling_llama4.py"),
    "gpt_oss": Family("gpt-oss", "softmax", source=_M + "gpt_oss/modeling_gpt_oss.py",
                      notes="softmax over the top-k biased logits"),
    "phimoe": Family("Phi-3.5-MoE", "softmax", source=_M + "phimoe/modeling_phimoe.py",
                     notes="sparsemixer: masked softmax per chosen expert"),
    "granitemoe": Family("Granite-MoE", "softmax", source=_M + "granitemoe/modeling_granitemoe.py",
                         notes="softmax over the top-k logits"),
    "dbrx": Family("DBRX", "softmax", source=_M + "dbrx/modeling_dbrx.py",
                   notes="top-k weights divided by their moe_normalize_expert_weights p-norm"),
}
_ALIASES = {
    "qwen3_vl_moe_text": "qwen3_vl_moe", "llama4_text": "llama4", "granitemoeshared": "granitemoe",
    "granitemoehybrid": "granitemoe", "deepseek_v32": None,
}
# families whose gate returns only logits while the block picks experts elsewhere: never recomputed
_NO_INLINE = ("deepseek_v3", "glm4_moe", "minimax_m2", "deepseek_v2", "gpt_oss", "phimoe", "granitemoe", "dbrx")


def resolve_family(cfg, family=None):
    """The FAMILIES key for a config dict (or `family` given); refuses unknown model types by name."""
    if family is not None:
        if family != "generic" and family not in FAMILIES:
            raise ValueError(f"family {family!r} is unknown; known: {', '.join(sorted(FAMILIES))}, or 'generic'")
        return family
    types = [t for t in (cfg.get("model_type"), (cfg.get("text_config") or {}).get("model_type")) if t]
    for t in types:
        t = _ALIASES.get(t, t)
        if t in FAMILIES:
            return t
    raise ValueError(
        f"model_type {', '.join(map(repr, types)) or '(none)'} is not a MoE family moescope_capture knows "
        f"({', '.join(FAMILIES[k].name for k in FAMILIES)}): its routing could be recorded wrongly, so it is refused. "
        "If its gate returns logits for a plain softmax top-k, or returns (ids, weights), pass family='generic'.")


def find_moe_blocks(model):
    """{decoder layer index: MoE block} - modules named `...layers.{i}.{mlp|block_sparse_moe|moe|feed_forward}`
    or `...blocks.{i}.ffn` (DBRX) that have a `gate` or `router` child."""
    found = {}
    for name, module in model.named_modules():
        m = _BLOCK_NAME.search(name)
        if not m or _router_of(module) is None:
            continue
        layer = int(m.group(1))
        if layer in found:
            raise ValueError(f"two MoE blocks for layer {layer} ({name}): pass routers= explicitly")
        found[layer] = module
    return found


def _router_of(block):
    for attr in ("gate", "router"):
        r = getattr(block, attr, None)
        if isinstance(r, torch.nn.Module):
            return r
    return None


def save_safetensors(path, tensors, metadata=None):
    """Write {name: numpy array} as a safetensors file (the format's spec, numpy only)."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    offset = 0
    arrays = []
    for name, a in tensors.items():
        a = np.ascontiguousarray(a)
        if a.dtype not in _ST_DTYPES:
            raise TypeError(f"{name}: dtype {a.dtype} cannot be stored")
        if a.dtype.byteorder == ">":
            a = a.astype(a.dtype.newbyteorder("<"))
        header[name] = {"dtype": _ST_DTYPES[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
        arrays.append(a)
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    head += b" " * ((8 - (8 + len(head)) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(len(head).to_bytes(8, "little"))
        f.write(head)
        for a in arrays:
            f.write(a.tobytes())
    os.replace(tmp, path)


def png_bytes(image):
    """A PIL image or a uint8 array [H, W] / [H, W, 1|3|4] as PNG bytes (PNG spec, zlib only)."""
    if hasattr(image, "convert") and hasattr(image, "size"):  # PIL
        image = np.asarray(image.convert("RGBA" if "A" in image.getbands() else "RGB"))
    a = _np(image)
    if a.dtype != np.uint8:
        raise TypeError(f"images must be PIL images or uint8 arrays, got dtype {a.dtype}")
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4) or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"image arrays must be [H, W] or [H, W, 1|3|4], got shape {a.shape}")
    h, w, c = a.shape
    color = {1: 0, 3: 2, 4: 6}[c]
    raw = b"".join(b"\x00" + a[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def _np(t):
    if t is None:
        return None
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu()
        if t.dtype == torch.bfloat16 or t.dtype == torch.float16:
            t = t.float()
        return t.numpy()
    return np.asarray(t)


def _config_dict(model):
    cfg = getattr(model, "config", None)
    if cfg is None:
        return {}
    if hasattr(cfg, "to_dict"):
        cfg = cfg.to_dict()
    elif not isinstance(cfg, dict):
        cfg = dict(vars(cfg))
    try:
        return json.loads(json.dumps(cfg, default=str))
    except (TypeError, ValueError):
        return {}


# -- reading what a router / block returned -------------------------------------------------------

def _ids_weights(where, out, n_tokens=None):
    """(ids [N,K] int, weights [N,K] float32) from a tuple holding an integer id tensor and either a
    float tensor of the same shape (the top-k weights) or one [N, E] float tensor of scattered scores
    (gpt-oss 4.x), in any order."""
    ts = [t for t in (out if isinstance(out, (tuple, list)) else [out]) if isinstance(t, torch.Tensor)]
    ids = [t for t in ts if not t.is_floating_point() and t.dtype != torch.bool and t.dim() >= 1]
    if len(ids) != 1:
        raise TypeError(f"{where}: expected one integer expert-id tensor in the output, found {len(ids)}")
    idx = ids[0]
    k = idx.shape[-1]
    idx2 = idx.reshape(-1, k)
    fl = [t for t in ts if t.is_floating_point()]
    same = [t for t in fl if tuple(t.shape) == tuple(idx.shape)]
    if len(same) == 1:
        w = same[0].reshape(-1, k)
    elif len(same) > 1:
        raise TypeError(f"{where}: {len(same)} float tensors shaped like the ids; cannot tell the weights")
    else:
        full = [t for t in fl if t.numel() == idx2.shape[0] * t.shape[-1] and t.shape[-1] > k]
        if len(full) != 1:
            raise TypeError(f"{where}: no top-k weights next to the expert ids")
        w = full[0].reshape(idx2.shape[0], -1).gather(1, idx2.long())
    return _np(idx2).astype(np.int32), _np(w).astype(np.float32)


def _llama4(where, out, k):
    """Llama4Router returns (router_scores, router_logits): scores are sigmoid of the top-k logits
    scattered into -inf (so 0 elsewhere), [T, E] (or [E, T] in early 4.5x); logits are [T, E]."""
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise TypeError(f"{where}: Llama4Router should return (router_scores, router_logits)")
    scores, logits = out
    logits2 = logits.reshape(-1, logits.shape[-1])
    T, E = logits2.shape
    _, idx = torch.topk(logits2, k, dim=1)
    if tuple(scores.shape) == (T, E) and T != E:
        s = scores
    elif tuple(scores.shape) == (E, T) and T != E:
        s = scores.t()
    else:  # square: the orientation whose chosen entries are nonzero
        s = scores if bool((scores.gather(1, idx) > 0).all()) else scores.t()
    w = s.float().gather(1, idx)
    if bool((w <= 0).any()):
        raise TypeError(f"{where}: router_scores are zero at the top-k of router_logits; not a Llama-4 router output")
    return _np(idx).astype(np.int32), _np(w).astype(np.float32), _np(logits2).astype(np.float32)


def _granite(where, out, k):
    """GraniteMoeTopKGating (4.x) returns (index_sorted_experts, batch_index, batch_gates, expert_size,
    logits): the flat (token, slot) pairs sorted by expert, with expert_size tokens per expert."""
    index_sorted, batch_index, batch_gates, expert_size, logits = out
    sizes = torch.as_tensor(list(expert_size) if not isinstance(expert_size, torch.Tensor) else expert_size).long()
    experts = torch.repeat_interleave(torch.arange(len(sizes)), sizes.cpu())
    T = logits.reshape(-1, logits.shape[-1]).shape[0]
    ids = torch.full((T, k), -1, dtype=torch.long)
    w = torch.zeros((T, k), dtype=torch.float32)
    flat = index_sorted.cpu().long()
    ids.view(-1)[flat] = experts
    w.view(-1)[flat] = batch_gates.detach().cpu().float()
    if bool((ids < 0).any()) or not torch.equal(batch_index.cpu().long(), flat // k):
        raise TypeError(f"{where}: GraniteMoe gating output is not a complete top-{k} assignment")
    return ids.numpy().astype(np.int32), w.numpy(), _np(logits.reshape(T, -1)).astype(np.float32)


class RoutingCapture:
    """Context manager: hooks the MoE blocks, saves one file per `inputs(...)` batch, then the manifest."""

    def __init__(self, model, out_dir, routers=None, fmt="safetensors", special_ids=None,
                 image_token_id=None, image_special_ids=None, top_k=None, num_experts=None,
                 router_scoring=None, norm_topk_prob=None, save_logits=True, family=None, spatial_merge_size=None):
        if fmt not in ("safetensors", "npy"):
            raise ValueError("fmt must be 'safetensors' or 'npy'")
        self.model = model
        self.out_dir = out_dir
        self.fmt = fmt
        cfg = _config_dict(model)
        self.family = resolve_family(cfg, family)
        fam = FAMILIES.get(self.family)
        self.blocks = dict(routers) if routers is not None else find_moe_blocks(model)
        if not self.blocks:
            raise ValueError("no MoE blocks found (names like model.layers.3.mlp with a gate/router child); pass routers={layer: block}")
        self.save_logits = save_logits
        text = cfg.get("text_config") if isinstance(cfg.get("text_config"), dict) else cfg
        ffn = text.get("ffn_config") if isinstance(text.get("ffn_config"), dict) else {}  # DBRX
        look = {**ffn, **text}
        first = lambda *keys: next((look[k] for k in keys if isinstance(look.get(k), (int, float, str, bool))), None)  # noqa: E731
        self._cfg = look
        self.k = top_k if top_k is not None else first("num_experts_per_tok", "moe_top_k", "moe_topk", "top_k")
        self.spatial_merge_size = spatial_merge_size or (cfg.get("vision_config") or {}).get("spatial_merge_size")
        self.manifest = {
            "format": "moescope-hf-routing",
            "version": 2,
            "layer_index": "decoder",
            "family": fam.name if fam else "generic",
            "num_hidden_layers": first("num_hidden_layers", "num_layers", "n_layers"),
            "num_experts": num_experts if num_experts is not None else first("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts"),
            "top_k": self.k,
            "router_scoring": router_scoring or (fam.scoring if fam else first("scoring_func") or "softmax"),
            "norm_topk_prob": norm_topk_prob if norm_topk_prob is not None else bool(first("norm_topk_prob")),
            "moe_layers": sorted(self.blocks),
            "model_type": text.get("model_type"),
            "config": cfg,
            "gates": "router",  # the weights the block multiplied the experts by (SPEC: router weights)
            "batches": [],
        }
        if special_ids is not None:
            self.manifest["special_ids"] = sorted(int(i) for i in special_ids)
        if image_token_id is not None:
            self.manifest["image_token_id"] = int(image_token_id)
        if image_special_ids is not None:
            self.manifest["image_special_ids"] = sorted(int(i) for i in image_special_ids)
        self._handles = []
        self._patched = []
        self._pending = None
        self._outputs = {}
        self._current = []
        self._how = {}

    # -- context manager -------------------------------------------------------------------
    def __enter__(self):
        os.makedirs(self.out_dir, exist_ok=True)
        try:
            for layer, block in sorted(self.blocks.items()):
                self._attach(layer, block)
        except BaseException:
            self._detach()  # leave the model as it was
            raise
        self.manifest["recorded"] = {str(l): h for l, h in sorted(self._how.items())}
        return self

    def __exit__(self, exc_type, exc, tb):
        self._detach()
        if exc_type is None:
            self.flush()
            self._write_manifest()
        return False

    def _detach(self):
        for h in self._handles:
            h.remove()
        self._handles = []
        for undo in reversed(self._patched):
            undo()
        self._patched = []

    # -- where each block's decision is read ---------------------------------------------------
    def _attach(self, layer, block):
        router = _router_of(block)
        cls = type(block).__name__
        rname = "gate" if getattr(block, "gate", None) is router else "router"
        self._handles.append(block.register_forward_pre_hook(lambda m, a: self._current.append(layer)))
        self._handles.append(block.register_forward_hook(lambda m, a, o: self._current.pop()))
        route = getattr(type(block), "route_tokens_to_experts", None)
        if route is not None:
            # 5.x: the block picks experts (bias, groups, scaling) after a logits-only gate
            self._wrap(block, "route_tokens_to_experts", lambda out: self._add(layer, "route", _ids_weights(f"layer {layer}: {cls}.route_tokens_to_experts", out)))
            self._how[layer] = f"{cls}.route_tokens_to_experts (topk ids and weights it returned)"
            if router is not None and self.save_logits:
                self._handles.append(router.register_forward_hook(self._logits_hook(layer)))
            return
        mod = sys.modules.get(type(block).__module__)
        if self.family == "phimoe" and mod is not None and callable(getattr(mod, "sparsemixer", None)):
            self._wrap(mod, "sparsemixer", lambda out: self._add(self._current[-1] if self._current else None, "route", _ids_weights("sparsemixer", out)), module_level=True)
            self._how[layer] = f"{mod.__name__}.sparsemixer (multiplier, selected_experts) called by {cls}"
            if router is not None and self.save_logits:
                self._handles.append(router.register_forward_hook(self._logits_hook(layer)))
            return
        if router is None:
            raise ValueError(f"layer {layer}: {cls} has no gate/router module")
        self._handles.append(router.register_forward_hook(self._router_hook(layer, cls, rname, type(router).__name__)))
        self._how[layer] = f"{cls}.{rname} ({type(router).__name__}) output"

    def _wrap(self, owner, attr, record, module_level=False):
        orig = getattr(owner, attr)
        if getattr(orig, "_moescope_wrapped", False):
            return  # module-level function already wrapped for another layer

        def wrapped(*a, **kw):
            out = orig(*a, **kw)
            if self._pending is not None:
                record(out)
            return out

        wrapped._moescope_wrapped = True
        setattr(owner, attr, wrapped)
        if module_level:
            self._patched.append(lambda: setattr(owner, attr, orig))
        else:
            self._patched.append(lambda: owner.__dict__.pop(attr, None))

    def _logits_hook(self, layer):
        def hook(module, args, output):
            if self._pending is not None and isinstance(output, torch.Tensor) and output.is_floating_point():
                self._add(layer, "logits", _np(output.reshape(-1, output.shape[-1])).astype(np.float32))
        return hook

    def _router_hook(self, layer, cls, rname, rcls):
        where = f"layer {layer}: {cls}.{rname} ({rcls})"

        def hook(module, args, output):
            if self._pending is None:
                return  # forward passes outside `inputs(...)` are not recorded
            self._add(layer, "route", self._parse(where, module, output))
        return hook

    def _parse(self, where, router, output):
        fam = self.family
        k = getattr(router, "top_k", None) or self.k
        if fam == "llama4" and isinstance(output, torch.Tensor):
            # 4.51: router is a plain Linear; Llama4TextMoe.forward takes topk of the raw logits and
            # sigmoid of the chosen ones (the others are scattered to -inf, sigmoid 0)
            logits = output.reshape(-1, output.shape[-1])
            top, idx = torch.topk(logits, k, dim=1)
            w = torch.sigmoid(top.float()).to(output.dtype)
            return _np(idx).astype(np.int32), _np(w).astype(np.float32), _np(logits).astype(np.float32)
        if fam == "llama4":
            return _llama4(where, output, k)
        if fam == "granitemoe" and isinstance(output, (tuple, list)) and len(output) == 5:
            return _granite(where, output, k)
        if isinstance(output, torch.Tensor) and output.is_floating_point():
            logits = output.reshape(-1, output.shape[-1])
            rule = FAMILIES[fam].inline if fam in FAMILIES else (None, "norm_topk_prob")
            if fam in _NO_INLINE or rule is None:
                raise RuntimeError(
                    f"{where} returned only logits, and a {FAMILIES[fam].name} block picks its experts elsewhere "
                    "(selection bias, groups or its own scoring): refusing to guess them. Is this a transformers version "
                    "whose block has route_tokens_to_experts or whose router returns the chosen ids?")
            renorm, key = rule
            if renorm is None:
                renorm = bool(self._cfg.get(key))
            if k is None:
                raise RuntimeError(f"{where}: top-k unknown (no num_experts_per_tok in the config): pass top_k=")
            # the block's own calls: softmax in float32, topk, optional renormalisation (e.g. MixtralSparseMoeBlock.forward)
            probs = F.softmax(logits, dim=1, dtype=torch.float)
            w, idx = torch.topk(probs, k, dim=-1)
            if renorm:
                w = w / w.sum(dim=-1, keepdim=True)
            w = w.to(output.dtype)  # the block casts its weights back to the hidden dtype before using them
            return _np(idx).astype(np.int32), _np(w).astype(np.float32), _np(logits).astype(np.float32)
        if fam == "generic" and isinstance(output, torch.Tensor):
            raise RuntimeError(f"{where}: an integer tensor alone has no weights")
        ids, w = _ids_weights(where, output)
        return ids, w, None

    def _add(self, layer, kind, got):
        if layer is None:
            raise RuntimeError("a router ran outside any hooked MoE block")
        d = self._outputs.setdefault(layer, {})
        if kind == "logits":
            d.setdefault("logits", []).append(got)
            return
        ids, w = got[0], got[1]
        d.setdefault("ids", []).append(ids)
        d.setdefault("weights", []).append(w)
        if len(got) > 2 and got[2] is not None and self.save_logits:
            d.setdefault("logits", []).append(got[2])

    # -- capture ---------------------------------------------------------------------------
    def inputs(self, input_ids, attention_mask=None, mm_token_type_ids=None, image_mask=None, texts=None, sources=None,
               images=None, tokens=None, image_grid_thw=None, image_grids=None):
        """Declare the next forward pass's tokens ([batch, seq] or [seq]); saves the previous batch.

        images: per sample a list of PIL images / uint8 arrays (a flat list when the batch has one sample).
        tokens: per sample one string per input_ids position (tokenizer.convert_ids_to_tokens(ids)).
        image_grid_thw: Qwen2/3-VL processor output [n_images, 3] (patch grid t, h, w, in order over the
          batch); recorded per image as the grid of language-model tokens [t, h/m, w/m], m = the vision
          config's spatial_merge_size. image_grids: the same per sample given directly ([[t, h, w], ...]).
        """
        self.flush()
        ids = _np(input_ids)
        if ids.ndim == 1:
            ids = ids[None, :]
        if ids.ndim != 2:
            raise ValueError(f"input_ids must be [batch, seq] or [seq], got shape {ids.shape}")
        b, s = ids.shape
        extra = {}
        for name, v in (("attention_mask", attention_mask), ("mm_token_type_ids", mm_token_type_ids), ("image_mask", image_mask)):
            if v is not None:
                a = _np(v).reshape(b, -1)
                extra[name] = a.astype(np.int32)
        if texts is not None and len(texts) != b:
            raise ValueError(f"{len(texts)} texts for a batch of {b}")
        if sources is not None and len(sources) != b:
            raise ValueError(f"{len(sources)} sources for a batch of {b}")
        per = lambda v, what: _per_sample(v, b, what)  # noqa: E731
        imgs = per(images, "images")
        toks = per(tokens, "tokens")
        if toks is not None:
            for i, t in enumerate(toks):
                if len(t) != s:
                    raise ValueError(f"tokens of sample {i}: {len(t)} strings for {s} input_ids positions")
            toks = [[str(x) for x in t] for t in toks]
        grids = per(image_grids, "image_grids")
        if image_grid_thw is not None:
            if grids is not None:
                raise ValueError("give image_grid_thw or image_grids, not both")
            grids = self._grids_from_thw(image_grid_thw, ids, imgs)
        if grids is not None:
            grids = [[[int(x) for x in g] for g in gs] for gs in grids]
            for i, gs in enumerate(grids):
                if any(len(g) != 3 or min(g) < 1 for g in gs):
                    raise ValueError(f"image_grids of sample {i}: each grid must be [t, h, w] of positive integers")
                if imgs is not None and imgs[i] and len(imgs[i]) != len(gs):
                    raise ValueError(f"sample {i}: {len(imgs[i])} images but {len(gs)} image grids")
        self._pending = {"input_ids": ids.astype(np.int64), **extra, "texts": texts, "sources": sources,
                         "images": imgs, "tokens": toks, "grids": grids}
        self._outputs = {}

    def _grids_from_thw(self, thw, ids, imgs):
        thw = _np(thw).reshape(-1, 3).astype(np.int64)
        m = self.spatial_merge_size
        if not m:
            raise ValueError("image_grid_thw needs spatial_merge_size (vision_config.spatial_merge_size, e.g. 2): pass spatial_merge_size=")
        if ((thw[:, 1:] % m) != 0).any():
            raise ValueError(f"image_grid_thw {thw.tolist()} is not divisible by spatial_merge_size {m}")
        merged = [[int(t), int(h // m), int(w // m)] for t, h, w in thw]
        tok = self.manifest.get("image_token_id")
        out, at = [], 0
        for row in ids:
            if tok is not None:
                # walk the images of this sample by their runs of image tokens
                need, gs = int((row == tok).sum()), []
                while need > 0 and at < len(merged):
                    g = merged[at]
                    gs.append(g)
                    need -= g[0] * g[1] * g[2]
                    at += 1
                if need != 0:
                    raise ValueError("image_grid_thw does not match the image tokens of input_ids (image_token_id)")
                out.append(gs)
            else:
                if ids.shape[0] != 1:
                    raise ValueError("image_grid_thw for a batch of several samples needs image_token_id")
                out.append(merged)
                at = len(merged)
        if at != len(merged):
            raise ValueError(f"image_grid_thw has {len(merged)} images but input_ids use {at}")
        return out

    def flush(self):
        """Save the current batch (called by the next `inputs` and on exit)."""
        p = self._pending
        self._pending = None
        if p is None:
            return
        outs, self._outputs = self._outputs, {}
        if not outs:
            raise RuntimeError("inputs() was called but no MoE block ran: call the model's forward after inputs()")
        missing = sorted(set(self.blocks) - set(outs))
        if missing:
            raise RuntimeError(f"MoE layers {missing} did not run (or returned nothing readable) in this forward pass")
        tensors = {k: p[k] for k in ("input_ids", "attention_mask", "mm_token_type_ids", "image_mask") if k in p}
        for layer, parts in sorted(outs.items()):
            if "ids" not in parts:
                raise RuntimeError(f"layer {layer}: the router's logits were seen but not the experts the block chose")
            tensors[f"topk_ids.{layer}"] = np.concatenate(parts["ids"], axis=0).astype(np.int32)
            tensors[f"topk_weights.{layer}"] = np.concatenate(parts["weights"], axis=0).astype(np.float32)
            if "logits" in parts and self.save_logits:
                tensors[f"router_logits.{layer}"] = np.concatenate(parts["logits"], axis=0)
        rows = {name: a.shape[0] for name, a in tensors.items() if "." in name}
        if len(set(rows.values())) != 1:
            raise RuntimeError(f"router outputs disagree in token count: {rows}")
        n = len(self.manifest["batches"])
        if self.fmt == "safetensors":
            rel = f"batch-{n:06d}.safetensors"
            save_safetensors(os.path.join(self.out_dir, rel), tensors)
        else:
            rel = f"batch-{n:06d}"
            os.makedirs(os.path.join(self.out_dir, rel), exist_ok=True)
            for name, a in tensors.items():
                np.save(os.path.join(self.out_dir, rel, name + ".npy"), np.ascontiguousarray(a), allow_pickle=False)
        entry = {"path": rel}
        if p["texts"] is not None:
            entry["texts"] = [str(t) for t in p["texts"]]
        if p["sources"] is not None:
            entry["sources"] = [str(s) for s in p["sources"]]
        if p["tokens"] is not None:
            entry["tokens"] = p["tokens"]
        if p["grids"] is not None:
            entry["image_grids"] = p["grids"]
        if p["images"] is not None:
            entry["images"] = []
            for i, ims in enumerate(p["images"]):
                names = []
                for j, im in enumerate(ims or []):
                    name = f"batch-{n:06d}.s{i}.i{j}.png"
                    _write_bytes(os.path.join(self.out_dir, name), png_bytes(im))
                    names.append(name)
                entry["images"].append(names)
        self.manifest["batches"].append(entry)
        first = tensors[f"topk_ids.{min(outs)}"]
        if self.manifest["top_k"] is None:
            self.manifest["top_k"] = int(first.shape[1])
        if self.manifest["num_experts"] is None and f"router_logits.{min(outs)}" in tensors:
            self.manifest["num_experts"] = int(tensors[f"router_logits.{min(outs)}"].shape[1])
        self._write_manifest()

    def _write_manifest(self):
        path = os.path.join(self.out_dir, MANIFEST)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.manifest, f, indent=1)
        os.replace(tmp, path)


def _per_sample(v, b, what):
    """None, or a list of length b; with one sample a flat list (of images, token strings or
    [t, h, w] grids) is taken as that sample's."""
    if v is None:
        return None
    if isinstance(v, torch.Tensor):
        v = v.tolist()
    v = list(v)
    if b == 1:
        nested = lambda x: isinstance(x, (list, tuple))  # noqa: E731
        flat = (len(v) == 0 or not nested(v[0])) if what != "image_grids" else (len(v) == 0 or not nested(v[0][0]) if v and nested(v[0]) else True)
        if flat:
            v = [v]
    if len(v) != b:
        raise ValueError(f"{what}: {len(v)} entries for a batch of {b} samples")
    return v


def _write_bytes(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


# -- MoE-LLaVA ------------------------------------------------------------------------------------

_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def convert_moellava(dump, out_dir, moe_layers=None, num_layers=None, image_patches=576, num_experts=None, special_ids=None):
    """A MoE-LLaVA `--return_gating_logit` dump (torch.save of {i: {gating_logit, images, input_ids,
    output_ids}}, moellava/eval/model_vqa*.py) -> a capture folder for `moescope import hf`.

    gating_logit[l] is the [rows, E] output of layer l's DeepSpeed gate `wg` on the last generate step
    (use_cache=False, so the whole sequence): rows = output_ids with each -200 expanded to
    `image_patches` rows, minus the last token. DeepSpeed's top2gating takes the argmax as the first
    expert but samples the second with Gumbel noise, so only the first is known from the logits: it is
    recorded as top-1 with its softmax probability. `moe_layers`: the decoder layer of each MoE layer
    (MoE-LLaVA: every other layer, e.g. range(1, 32, 2)); taken from the dump's `layer_indices` when present.
    `images` (CLIP-normalised pixels) are stored as PNG, with a 24x24 patch grid for 576 patches.
    """
    data = torch.load(dump, map_location="cpu") if isinstance(dump, (str, os.PathLike)) else dump
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{dump}: expected a non-empty dict of samples (MoE-LLaVA --return_gating_logit)")
    os.makedirs(out_dir, exist_ok=True)
    side = int(round(image_patches ** 0.5))
    manifest = {
        "format": "moescope-hf-routing", "version": 2, "layer_index": "decoder", "family": "MoE-LLaVA",
        "num_hidden_layers": num_layers, "num_experts": num_experts, "top_k": 1, "router_scoring": "softmax",
        "norm_topk_prob": False, "image_token_id": -200, "batches": [],
        "gates": "router softmax probability of the argmax expert (DeepSpeed top2gating samples the second expert with Gumbel noise: not recorded)",
        "recorded": "MoE-LLaVA gating_logit (DeepSpeed TopKGate.wg output), top-1 = argmax",
    }
    if special_ids is not None:
        manifest["special_ids"] = sorted(int(i) for i in special_ids)
    layers_seen = None
    for n, (key, v) in enumerate(data.items()):
        where = f"{dump}: sample {key!r}"
        for f in ("gating_logit", "output_ids"):
            if f not in v:
                raise ValueError(f"{where}: no {f!r}")
        logits = [torch.as_tensor(t).float().reshape(-1, torch.as_tensor(t).shape[-1]) for t in v["gating_logit"]]
        layers = list(v.get("layer_indices") or (moe_layers if moe_layers is not None else []))
        if not layers:
            raise ValueError(f"{where}: which decoder layer is each MoE layer? pass moe_layers= (MoE-LLaVA: every other layer, e.g. range(1, 32, 2))")
        if len(layers) != len(logits):
            raise ValueError(f"{where}: {len(logits)} gating_logit layers but moe_layers has {len(layers)}")
        layers_seen = layers_seen or layers
        out_ids = torch.as_tensor(v["output_ids"]).reshape(-1).tolist()
        expanded = []
        for t in out_ids:
            expanded.extend([-200] * image_patches if t == -200 else [t])
        rows = logits[0].shape[0]
        if rows != len(expanded) - 1:
            raise ValueError(f"{where}: gating_logit has {rows} rows but output_ids expand to {len(expanded)} tokens "
                             f"(expected {len(expanded) - 1}: the last token is not routed); image_patches={image_patches}?")
        tensors = {"input_ids": np.asarray(expanded[:-1], dtype=np.int64)[None, :]}
        for l, lg in zip(layers, logits):
            if lg.shape[0] != rows:
                raise ValueError(f"{where}: MoE layers disagree in rows ({lg.shape[0]} vs {rows})")
            p = F.softmax(lg, dim=1)
            w, idx = p.max(dim=1)
            tensors[f"topk_ids.{l}"] = idx.numpy().astype(np.int32)[:, None]
            tensors[f"topk_weights.{l}"] = w.numpy().astype(np.float32)[:, None]
            tensors[f"router_logits.{l}"] = lg.numpy().astype(np.float32)
        rel = f"batch-{n:06d}.safetensors"
        save_safetensors(os.path.join(out_dir, rel), tensors)
        entry = {"path": rel, "sources": [f"{os.path.basename(str(dump))}:{key}"]}
        n_img = out_ids.count(-200)
        imgs = v.get("images")
        if imgs is not None and n_img:
            pix = torch.as_tensor(imgs).float().reshape(-1, 3, *torch.as_tensor(imgs).shape[-2:])
            names = []
            for j in range(min(pix.shape[0], n_img)):
                x = pix[j] * torch.tensor(_CLIP_STD)[:, None, None] + torch.tensor(_CLIP_MEAN)[:, None, None]
                arr = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
                name = f"batch-{n:06d}.s0.i{j}.png"
                _write_bytes(os.path.join(out_dir, name), png_bytes(arr))
                names.append(name)
            entry["images"] = [names]
        if n_img and side * side == image_patches:
            entry["image_grids"] = [[[1, side, side]] * n_img]
        manifest["batches"].append(entry)
        manifest["num_experts"] = manifest["num_experts"] or int(logits[0].shape[1])
    manifest["moe_layers"] = sorted(layers_seen)
    tmp = os.path.join(out_dir, MANIFEST + ".tmp")
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=1)
    os.replace(tmp, os.path.join(out_dir, MANIFEST))
    return out_dir
