/**
 * exp(x) for x <= 0, the softmax's exp(score - max): within 2 ulp of Math.exp (so the same
 * float32 gates in all but a one-in-billions rounding case), at about half its cost. A softmax
 * over E experts per row takes E of them, and V8's Math.exp (a call into fdlibm) was the largest
 * single cost of importing router logits.
 *
 * x = (k * 256 + j) * ln2/256 + r with |r| <= ln2/512; exp(x) = 2^k * 2^(j/256) * p(r), p the
 * degree-4 Taylor polynomial (truncation below 4e-17). ln2/256 is split as fdlibm's ln2_hi/ln2_lo
 * (ln2_hi has 21 trailing zero bits, so n * HI is exact for every n this range reaches).
 * Below -700 (subnormal results), NaN and -Infinity go to Math.exp.
 */
const N = 256;
const HI = 6.9314718036912381649e-1 / N;
const LO = 1.90821492927058770002e-10 / N;
const INV = N / Math.LN2;
const SHIFT = 6755399441055744; // 1.5 * 2^52: adding and subtracting it rounds to the nearest integer
/** 2^(j/N) */
const FRAC = Float64Array.from({ length: N }, (_, j) => Math.pow(2, j / N));
/** 2^-m for the whole powers reached above -700 */
const WHOLE = Float64Array.from({ length: 1024 }, (_, m) => Math.pow(2, -m));

/** The constants and tables, for softmax-topk.wat's copy of this function (the same values, so the same bits). */
export const EXP_NEG = { INV, SHIFT, HI, LO, C6: 1 / 6, C24: 1 / 24, MIN: -700, WHOLE, FRAC } as const;

export function expNonPositive(x: number): number {
  if (!(x >= -700)) return Math.exp(x);
  const n = x * INV + SHIFT - SHIFT;
  const r = x - n * HI - n * LO;
  const k = n | 0;
  const p = 1 + r * (1 + r * (0.5 + r * (1 / 6 + r * (1 / 24))));
  return WHOLE[-(k >> 8)] * (FRAC[k & (N - 1)] * p);
}
