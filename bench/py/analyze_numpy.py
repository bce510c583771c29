"""Peer for bench/analyze.ts: NumPy bincount of the same counts n[layer][modality][expert].

Usage: /usr/bin/python3 bench/py/analyze_numpy.py DIR L M E REPS
DIR holds layer.i16, modality.u8 (code 0..M-1) and expert.i16 (one value per choice), raw
little-endian arrays exported once from the trace by bench/analyze.ts. Reading them (np.fromfile)
is NOT timed: the timed part is the key computation and np.bincount, best of REPS after a warm-up.
Prints one JSON object: {"seconds": best, "seconds_bincount_only": best, "total": count sum, "numpy": version}.
"""
import json
import sys
import time

import numpy as np

d, L, M, E, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
layer = np.fromfile(f"{d}/layer.i16", dtype="<i2")
mod = np.fromfile(f"{d}/modality.u8", dtype=np.uint8)
expert = np.fromfile(f"{d}/expert.i16", dtype="<i2")
assert layer.shape == mod.shape == expert.shape


def best_of(fn):
    fn()  # warm up
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def counts_from_columns():
    key = (layer.astype(np.int32) * M + mod) * E + expert
    return np.bincount(key, minlength=L * M * E)


key = (layer.astype(np.int32) * M + mod) * E + expert
counts = counts_from_columns()
print(json.dumps({
    "seconds": best_of(counts_from_columns),
    "seconds_bincount_only": best_of(lambda: np.bincount(key, minlength=L * M * E)),
    "total": int(counts.sum()),
    "numpy": np.__version__,
}))
