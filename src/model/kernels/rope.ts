/**
 * Rotary position embedding, rotate-half convention (SPEC §1): per head, with halves a = x[0..hd/2),
 * b = x[hd/2..hd) and angle_j = pos * theta^(-2j/hd):
 *   out_a = a*cos - b*sin,   out_b = b*cos + a*sin        (= x*cos + rotate_half(x)*sin)
 * x is [N, H, hd] (rows of C = H*hd); each row has its own position.
 */
export interface RopeTable {
  cos: Float32Array; // [maxPos, hd/2]
  sin: Float32Array; // [maxPos, hd/2]
  maxPos: number;
  half: number;
}

export function ropeTable(maxPos: number, hd: number, theta: number): RopeTable {
  const half = hd >> 1;
  const cos = new Float32Array(maxPos * half);
  const sin = new Float32Array(maxPos * half);
  for (let j = 0; j < half; j++) {
    // PyTorch computes inv_freq in float32: 1 / theta^(2j/hd)
    const invFreq = Math.fround(1 / Math.pow(theta, (2 * j) / hd));
    for (let p = 0; p < maxPos; p++) {
      const angle = Math.fround(p * invFreq);
      cos[p * half + j] = Math.cos(angle);
      sin[p * half + j] = Math.sin(angle);
    }
  }
  return { cos, sin, maxPos, half };
}

function checkPos(pos: Int32Array, N: number, table: RopeTable): void {
  for (let n = 0; n < N; n++) {
    if (pos[n] < 0 || pos[n] >= table.maxPos) throw new RangeError(`rope: position ${pos[n]} outside [0, ${table.maxPos})`);
  }
}

/** out may be the same array as inp (in place). */
export function ropeForward(
  out: Float32Array,
  inp: Float32Array,
  pos: Int32Array,
  table: RopeTable,
  N: number,
  H: number,
  hd: number,
): void {
  // inp/out [N, H, hd], pos [N]; table [maxPos, hd/2]
  const half = hd >> 1;
  const C = H * hd;
  checkPos(pos, N, table);
  for (let n = 0; n < N; n++) {
    const t = pos[n] * half;
    for (let h = 0; h < H; h++) {
      const x = n * C + h * hd;
      for (let j = 0; j < half; j++) {
        const c = table.cos[t + j], s = table.sin[t + j];
        const a = inp[x + j], b = inp[x + half + j];
        out[x + j] = a * c - b * s; // out_a = a*cos - b*sin
        out[x + half + j] = b * c + a * s; // out_b = b*cos + a*sin
      }
    }
  }
}

/** Accumulates into dinp; dinp may be the same array as dout, then the gradient is replaced in place. */
export function ropeBackward(
  dinp: Float32Array,
  dout: Float32Array,
  pos: Int32Array,
  table: RopeTable,
  N: number,
  H: number,
  hd: number,
): void {
  // dout/dinp [N, H, hd], pos [N]
  const half = hd >> 1;
  const C = H * hd;
  const inPlace = dinp === dout;
  checkPos(pos, N, table);
  for (let n = 0; n < N; n++) {
    const t = pos[n] * half;
    for (let h = 0; h < H; h++) {
      const x = n * C + h * hd;
      for (let j = 0; j < half; j++) {
        const c = table.cos[t + j], s = table.sin[t + j];
        const ga = dout[x + j], gb = dout[x + half + j];
        const da = ga * c + gb * s; // undoes out_a = a*cos - b*sin and out_b = b*cos + a*sin (w.r.t. a)
        const db = gb * c - ga * s; // same two lines, w.r.t. b
        if (inPlace) {
          dinp[x + j] = da;
          dinp[x + half + j] = db;
        } else {
          dinp[x + j] += da;
          dinp[x + half + j] += db;
        }
      }
    }
  }
}
