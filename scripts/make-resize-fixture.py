"""Fixture for test/data/resize.test.ts: bilinear resize (half-pixel centres, no antialiasing) by
PyTorch's F.interpolate(mode='bilinear', align_corners=False), the convention moescope follows.
Run with Debian's torch:  /usr/bin/python3 scripts/make-resize-fixture.py"""
import json
import torch
import torch.nn.functional as F

g = torch.Generator().manual_seed(7)
cases = []
for (h, w, oh, ow) in [(5, 7, 32, 32), (48, 40, 32, 32), (3, 3, 8, 5), (33, 31, 32, 32)]:
    img = torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.int64)
    out = F.interpolate(img[None].double(), size=(oh, ow), mode='bilinear', align_corners=False, antialias=False)[0]
    cases.append({
        'width': w, 'height': h, 'outWidth': ow, 'outHeight': oh,
        'rgb': img.permute(1, 2, 0).reshape(-1).tolist(),  # HWC, as RGBImage
        'out': [round(v, 6) for v in out.permute(1, 2, 0).reshape(-1).tolist()],  # before rounding to 8 bits
    })
with open('test/fixtures/resize-bilinear.json', 'w') as f:
    json.dump({'generator': 'scripts/make-resize-fixture.py', 'torch': torch.__version__, 'cases': cases}, f)
