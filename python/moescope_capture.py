"""Record where a PyTorch Mixture-of-Experts model routes its tokens, for `moescope import hf`.

One file, needs only torch and numpy. Hooks the router ("gate") modules of a Hugging Face
transformers-style model and writes, per batch, a safetensors file (or a folder of .npy files)
plus a JSON manifest, `moescope_routing.json`. No pickles.

    from moescope_capture import RoutingCapture

    with RoutingCapture(model, "routing-out", special_ids=tokenizer.all_special_ids,
                        image_token_id=IMAGE_PAD_ID) as cap:
        for batch in batches:
            cap.inputs(batch["input_ids"], attention_mask=batch["attention_mask"],
                       texts=batch_texts)          # before the forward pass
            with torch.no_grad():
                model(**batch)
    # then:  moescope import hf routing-out --out my-trace

Routers found by module name: `...layers.{i}.{mlp|block_sparse_moe|moe|feed_forward}.{gate|router}`
(Mixtral, Qwen2/3-MoE, OLMoE, DeepSeek-V2/V3, ...), or pass `routers={decoder_layer: module}`.
What a router returns decides what is saved:
  * a tensor [tokens, experts] (Mixtral/Qwen-MoE/OLMoE gates: logits)  -> router_logits.{layer}
  * a tuple with integer ids [tokens, k] and weights [tokens, k] (DeepSeek-style gates, and the
    newer transformers routers that return (logits, weights, ids)) -> topk_ids.{layer},
    topk_weights.{layer}, plus router_logits.{layer} when a [tokens, experts] float is there too.
`{layer}` is the decoder layer index taken from the module name, so models with dense layers
(first_k_dense_replace, mlp_only_layers, MoE every other layer) keep their real layer numbers.

Use teacher-forced forward passes (one forward per `inputs` call). For generated text, run the
full generated sequence through the model once more.
"""

import json
import os
import re

import numpy as np
import torch

__all__ = ["RoutingCapture", "find_routers", "save_safetensors"]

MANIFEST = "moescope_routing.json"
_ROUTER_NAME = re.compile(r"(?:^|\.)layers\.(\d+)\.(?:mlp|block_sparse_moe|moe|feed_forward|ffn)\.(?:gate|router)$")
_ST_DTYPES = {
    np.dtype("float32"): "F32", np.dtype("float64"): "F64", np.dtype("float16"): "F16",
    np.dtype("int64"): "I64", np.dtype("int32"): "I32", np.dtype("int16"): "I16", np.dtype("int8"): "I8",
    np.dtype("uint8"): "U8", np.dtype("bool"): "BOOL",
}


def find_routers(model):
    """{decoder layer index: router module} by the module naming of HF MoE models."""
    found = {}
    for name, module in model.named_modules():
        m = _ROUTER_NAME.search(name)
        if m:
            layer = int(m.group(1))
            if layer in found:
                raise ValueError(f"two router modules for layer {layer}: pass routers= explicitly")
            found[layer] = module
    return found


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


class RoutingCapture:
    """Context manager: hooks the routers, saves one file per `inputs(...)` batch, then the manifest."""

    def __init__(self, model, out_dir, routers=None, fmt="safetensors", special_ids=None,
                 image_token_id=None, image_special_ids=None, top_k=None, num_experts=None,
                 router_scoring=None, norm_topk_prob=None, save_logits=True):
        if fmt not in ("safetensors", "npy"):
            raise ValueError("fmt must be 'safetensors' or 'npy'")
        self.model = model
        self.out_dir = out_dir
        self.fmt = fmt
        self.routers = dict(routers) if routers is not None else find_routers(model)
        if not self.routers:
            raise ValueError("no router modules found (names like model.layers.3.mlp.gate); pass routers={layer: module}")
        self.save_logits = save_logits
        cfg = _config_dict(model)
        text = cfg.get("text_config") if isinstance(cfg.get("text_config"), dict) else cfg
        first = lambda *keys: next((text[k] for k in keys if isinstance(text.get(k), (int, float, str, bool))), None)  # noqa: E731
        self.manifest = {
            "format": "moescope-hf-routing",
            "version": 1,
            "layer_index": "decoder",
            "num_hidden_layers": first("num_hidden_layers", "num_layers"),
            "num_experts": num_experts if num_experts is not None else first("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts"),
            "top_k": top_k if top_k is not None else first("num_experts_per_tok", "moe_topk", "top_k"),
            "router_scoring": router_scoring or first("scoring_func") or "softmax",
            "norm_topk_prob": norm_topk_prob if norm_topk_prob is not None else (first("norm_topk_prob") if first("norm_topk_prob") is not None else text.get("model_type") == "mixtral"),
            "moe_layers": sorted(self.routers),
            "model_type": text.get("model_type"),
            "config": cfg,
            "batches": [],
        }
        if special_ids is not None:
            self.manifest["special_ids"] = sorted(int(i) for i in special_ids)
        if image_token_id is not None:
            self.manifest["image_token_id"] = int(image_token_id)
        if image_special_ids is not None:
            self.manifest["image_special_ids"] = sorted(int(i) for i in image_special_ids)
        self._handles = []
        self._pending = None
        self._outputs = {}

    # -- context manager -------------------------------------------------------------------
    def __enter__(self):
        os.makedirs(self.out_dir, exist_ok=True)
        for layer, module in sorted(self.routers.items()):
            self._handles.append(module.register_forward_hook(self._hook(layer)))
        return self

    def __exit__(self, exc_type, exc, tb):
        for h in self._handles:
            h.remove()
        self._handles = []
        if exc_type is None:
            self.flush()
        self._write_manifest()
        return False

    # -- capture ---------------------------------------------------------------------------
    def inputs(self, input_ids, attention_mask=None, mm_token_type_ids=None, image_mask=None, texts=None, sources=None):
        """Declare the next forward pass's tokens ([batch, seq] or [seq]); saves the previous batch."""
        self.flush()
        ids = _np(input_ids)
        if ids.ndim == 1:
            ids = ids[None, :]
        if ids.ndim != 2:
            raise ValueError(f"input_ids must be [batch, seq] or [seq], got shape {ids.shape}")
        b = ids.shape[0]
        extra = {}
        for name, v in (("attention_mask", attention_mask), ("mm_token_type_ids", mm_token_type_ids), ("image_mask", image_mask)):
            if v is not None:
                a = _np(v).reshape(b, -1)
                extra[name] = a.astype(np.int32)
        if texts is not None and len(texts) != b:
            raise ValueError(f"{len(texts)} texts for a batch of {b}")
        if sources is not None and len(sources) != b:
            raise ValueError(f"{len(sources)} sources for a batch of {b}")
        self._pending = {"input_ids": ids.astype(np.int64), **extra, "texts": texts, "sources": sources}
        self._outputs = {}

    def _hook(self, layer):
        def hook(module, args, output):
            if self._pending is None:
                return  # forward passes outside `inputs(...)` are not recorded
            self._outputs.setdefault(layer, []).append(self._parse(layer, output))
        return hook

    @staticmethod
    def _parse(layer, output):
        """What a router returned -> {'logits': [N,E]} and/or {'ids': [N,K], 'weights': [N,K]}."""
        if isinstance(output, torch.Tensor):
            if not output.is_floating_point():
                return {"ids": _np(output).reshape(-1, output.shape[-1])}
            return {"logits": _np(output).reshape(-1, output.shape[-1]).astype(np.float32)}
        if isinstance(output, (tuple, list)):
            ts = [t for t in output if isinstance(t, torch.Tensor) and t.dim() >= 1]
            ids = next((t for t in ts if not t.is_floating_point() and t.dtype != torch.bool), None)
            got = {}
            if ids is not None:
                k = ids.shape[-1]
                got["ids"] = _np(ids).reshape(-1, k)
                w = next((t for t in ts if t.is_floating_point() and t.shape == ids.shape), None)
                if w is not None:
                    got["weights"] = _np(w).reshape(-1, k).astype(np.float32)
                logits = next((t for t in ts if t.is_floating_point() and t.shape[-1] != k and t.numel() // t.shape[-1] == ids.numel() // k), None)
            else:
                logits = next((t for t in ts if t.is_floating_point()), None)
            if logits is not None:
                got["logits"] = _np(logits).reshape(-1, logits.shape[-1]).astype(np.float32)
            if got:
                return got
        raise TypeError(f"layer {layer}: cannot read the router output ({type(output).__name__}); expected logits or (ids, weights)")

    def flush(self):
        """Save the current batch (called by the next `inputs` and on exit)."""
        p = self._pending
        self._pending = None
        if p is None:
            return
        outs, self._outputs = self._outputs, {}
        if not outs:
            raise RuntimeError("inputs() was called but no router ran: call the model's forward after inputs()")
        tensors = {k: p[k] for k in ("input_ids", "attention_mask", "mm_token_type_ids", "image_mask") if k in p}
        for layer, parts in sorted(outs.items()):
            for key, name in (("logits", "router_logits"), ("ids", "topk_ids"), ("weights", "topk_weights")):
                if key == "logits" and not self.save_logits and "ids" in parts[0]:
                    continue
                if key in parts[0]:
                    a = np.concatenate([q[key] for q in parts], axis=0)
                    if key == "ids":
                        a = a.astype(np.int32)
                    tensors[f"{name}.{layer}"] = a
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
        self.manifest["batches"].append(entry)
        first_layer = outs[min(outs)][0]
        if self.manifest["top_k"] is None and "ids" in first_layer:
            self.manifest["top_k"] = int(first_layer["ids"].shape[1])
        if self.manifest["num_experts"] is None and "logits" in first_layer:
            self.manifest["num_experts"] = int(first_layer["logits"].shape[1])
        self._write_manifest()

    def _write_manifest(self):
        path = os.path.join(self.out_dir, MANIFEST)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.manifest, f, indent=1)
        os.replace(tmp, path)
