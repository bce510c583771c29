#!/usr/bin/python3
"""Write test/fixtures/train-adamw.json: what torch.optim.AdamW and clip_grad_norm_ do, step by step.

    /usr/bin/python3 scripts/make-train-fixture.py

Two parameter groups (one with weight decay, one without, as src/train/adamw.ts splits them), four
steps with given gradients, a changing learning rate and global-norm clipping (clipping is active on
some steps, not on others). test/train/adamw.test.ts replays the same steps with the TypeScript
optimizer and compares.
"""
import json
import os

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
torch.manual_seed(7)
decay = torch.randn(6, dtype=torch.float32)
nodecay = torch.randn(3, dtype=torch.float32)
init = torch.cat([decay, nodecay]).tolist()
pd = decay.clone().requires_grad_(True)
pn = nodecay.clone().requires_grad_(True)
opts = dict(betas=(0.9, 0.95), eps=1e-8)
wd = 0.1
opt = torch.optim.AdamW([{"params": [pd], "weight_decay": wd}, {"params": [pn], "weight_decay": 0.0}], lr=1e-2, **opts)
clip = 1.0
steps = []
for k, (lr, scale) in enumerate([(1e-2, 0.3), (2e-2, 3.0), (1.5e-2, 0.1), (5e-3, 10.0)]):
    g = torch.randn(9, dtype=torch.float32) * scale
    pd.grad = g[:6].clone()
    pn.grad = g[6:].clone()
    for group in opt.param_groups:
        group["lr"] = lr
    norm = torch.nn.utils.clip_grad_norm_([pd, pn], clip)
    opt.step()
    steps.append({"lr": lr, "grad": g.tolist(), "norm": float(norm), "params": torch.cat([pd.detach(), pn.detach()]).tolist()})
out = {"generator": "scripts/make-train-fixture.py", "torch": torch.__version__, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8,
       "weight_decay": wd, "clip": clip, "decay_length": 6, "init": init, "steps": steps}
with open(os.path.join(ROOT, "test", "fixtures", "train-adamw.json"), "w") as f:
    json.dump(out, f, indent=1)
print("wrote test/fixtures/train-adamw.json")
