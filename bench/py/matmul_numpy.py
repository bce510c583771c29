"""Peer for bench/matmul.ts: NumPy (OpenBLAS) matmul GFLOP/s, single-threaded.

Run with OPENBLAS_NUM_THREADS=1. Reads one JSON request per stdin line, {"kind", "N", "C", "OC",
"seconds"}, and answers each with one JSON line {"gflops": rate of the fastest call}, so the caller can interleave
its own timings with ours (both sides then see the same machine load). The first line of output
describes the setup: {"numpy": version, "blas": library}.
Same products and FLOP counts as our kernels: fwd  out = x @ w.T (2*N*C*OC);
bwd  dx = dout @ w and dw = dout.T @ x (4*N*C*OC). Outputs are preallocated (out=), as our kernels
write into caller buffers.
"""
import json
import os
import sys
import time

import numpy as np


def best_rate(fn, flops, seconds):
    """flops / the fastest single call within `seconds` (the TypeScript side is timed the same way)."""
    for _ in range(3):  # warm up
        fn()
    best = float("inf")
    end = time.perf_counter() + seconds
    calls = 0
    while calls < 5 or time.perf_counter() < end:
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
        calls += 1
    return flops / best / 1e9


def blas_library():
    """The BLAS the process actually loaded (Debian: libblas.so.3 -> OpenBLAS via alternatives)."""
    try:
        with open("/proc/self/maps") as f:
            libs = {line.split()[-1] for line in f if "blas" in line.lower()}
        return ",".join(sorted(os.path.realpath(p).rsplit("/", 1)[-1] for p in libs)) or "unknown"
    except OSError:
        return "unknown"


def product(kind, n, c, oc):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c), dtype=np.float32)
    w = rng.standard_normal((oc, c), dtype=np.float32)
    if kind == "fwd":
        o = np.empty((n, oc), dtype=np.float32)
        return (lambda: np.matmul(x, w.T, out=o)), 2 * n * c * oc
    dout = rng.standard_normal((n, oc), dtype=np.float32)
    dx = np.empty((n, c), dtype=np.float32)
    dw = np.empty((oc, c), dtype=np.float32)

    def fn():
        np.matmul(dout, w, out=dx)
        np.matmul(dout.T, x, out=dw)

    return fn, 4 * n * c * oc


def main():
    np.ones((8, 8), dtype=np.float32) @ np.ones((8, 8), dtype=np.float32)  # load BLAS before naming it
    print(json.dumps({"numpy": np.__version__, "blas": blas_library()}), flush=True)
    cache = {}
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        key = (req["kind"], req["N"], req["C"], req["OC"])
        if key not in cache:
            cache[key] = product(*key)
        fn, flops = cache[key]
        print(json.dumps({"gflops": best_rate(fn, flops, req["seconds"])}), flush=True)


if __name__ == "__main__":
    main()
