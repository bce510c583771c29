/**
 * The routing rows of one shard, held in the writer's own column arrays until the shard is
 * written in its order (parquet/routing-file.ts). The arrays are allocated once and reused shard
 * after shard (growing only when a batch does not fit), so holding rows costs no garbage.
 */
export type StageColumn = Int32Array | Int16Array | Uint16Array | Uint8Array | Float32Array;

export interface StageRows {
  n: number;
  sample: Int32Array;
  pos: Int32Array;
  mod: Uint8Array;
  token: Int32Array;
  layer: Int32Array; // 0..32767 (checked by the writer)
  experts: Int32Array; // n*K, ids < 32768
  gates: Float32Array | null; // n*K; null: not kept (the producer recorded none)
  probs: Float32Array | null; // n*E
  extra: (Int32Array | Uint16Array)[]; // per extra column: values (INTEGER) or codes (VARCHAR)
}

/** The held rows' columns as a routing file reads them (parquet/routing-file.ts): rows 0..rows-1 of each. */
export interface StageColumns {
  rows: number;
  sample: Int32Array<ArrayBuffer>;
  pos: Int32Array<ArrayBuffer>;
  mod: Uint8Array<ArrayBuffer>;
  token: Int32Array<ArrayBuffer>;
  layer: Int16Array<ArrayBuffer>;
  experts: Int16Array<ArrayBuffer>;
  gates: Float32Array<ArrayBuffer>;
  probs: Float32Array<ArrayBuffer>;
  extra: (Int32Array<ArrayBuffer> | Uint16Array<ArrayBuffer>)[];
  /** room for the rows' order (RowStage.order fills its first `rows`) */
  perm: Int32Array<ArrayBuffer>;
}

export class RowStage implements StageColumns {
  rows = 0;
  /** every row so far came with gates */
  hasGates = true;
  private cap = 0;
  sample = new Int32Array(0);
  pos = new Int32Array(0);
  mod = new Uint8Array(0);
  token = new Int32Array(0);
  layer = new Int16Array(0);
  experts = new Int16Array(0);
  gates = new Float32Array(0);
  probs = new Float32Array(0);
  extra: (Int32Array<ArrayBuffer> | Uint16Array<ArrayBuffer>)[];
  perm = new Int32Array(0);
  // per layer: rows, and the last (sample, pos) seen, to tell whether each layer's rows came in order
  private readonly seen = new Uint8Array(32768);
  private readonly count = new Int32Array(32768);
  private readonly lastS = new Int32Array(32768);
  private readonly lastP = new Int32Array(32768);
  private readonly layers: number[] = [];
  private inOrder = true;
  /** arrays of a shard written elsewhere, moved back to be filled again (take, giveBack) */
  private spare: StageColumns | null = null;

  constructor(
    private readonly K: number,
    private readonly E: number, // probs per row (0 without --full-probs)
    extraTypes: ('INTEGER' | 'VARCHAR')[],
    /**
     * Rows to make room for at the first growth, beside the first batch: the writer's shard size
     * (the batch that fills a shard may pass it). Growing by doubling copied the rows held several
     * times over (a tenth of a capture's writing); a large array's pages are only touched as rows
     * fill them, so a small trace costs no more memory.
     */
    private readonly reserve = 0,
  ) {
    this.extra = extraTypes.map((t) => (t === 'INTEGER' ? new Int32Array(0) : new Uint16Array(0)));
  }

  append(r: StageRows): void {
    const { K, E } = this;
    const o = this.rows, n = r.n;
    if (o + n > this.cap) this.grow(Math.max(o + n, 2 * this.cap, this.reserve + n));
    this.sample.set(r.sample, o);
    this.pos.set(r.pos, o);
    this.mod.set(r.mod, o);
    this.token.set(r.token, o);
    this.layer.set(r.layer, o); // int32 -> int16, in range
    this.experts.set(r.experts, o * K);
    if (r.gates && this.hasGates) this.gates.set(r.gates, o * K);
    else this.hasGates = false;
    if (E) this.probs.set(r.probs!, o * E);
    r.extra.forEach((v, x) => this.extra[x].set(v, o));
    // the order check, as rows arrive
    if (!trackOrder(r.layer, r.sample, r.pos, n, this.seen, this.count, this.lastS, this.lastP, this.layers)) this.inOrder = false;
    this.rows += n;
  }

  /**
   * The shard's row order, ORDER BY layer, sample, pos, arrival: rows by layer (a stable counting
   * sort), which is already that order when every layer's rows came in (sample, pos) order, as
   * capture and the engines write them; otherwise each layer's rows are sorted too. In `perm`,
   * kept from shard to shard like the columns (an order array made per shard, of a slightly
   * different size each time, left holes in the writer thread's malloc arena that grew it by
   * ~14 MB over the first shards of a capture).
   */
  order(): Int32Array {
    const n = this.rows;
    const perm = this.perm.subarray(0, n);
    const { count, layer, sample, pos } = this;
    const layers = this.layers.sort((a, b) => a - b);
    const starts: number[] = [];
    let o = 0;
    for (const l of layers) {
      const c = count[l];
      count[l] = o; // from here: the next output position of layer l
      starts.push(o);
      o += c;
    }
    scatterByLayer(perm, count, layer, n);
    if (!this.inOrder) {
      starts.push(n);
      for (let x = 0; x + 1 < starts.length; x++) {
        perm.subarray(starts[x], starts[x + 1]).sort((a, b) => sample[a] - sample[b] || pos[a] - pos[b] || a - b);
      }
    }
    return perm;
  }

  /**
   * The held rows' arrays, taken away (a shard written in another thread: shard-thread.ts);
   * then clear(). The stage goes on in arrays given back from an earlier take, else new ones.
   */
  take(): StageColumns {
    const { rows, sample, pos, mod, token, layer, experts, gates, probs, extra, perm } = this;
    const next = this.spare;
    this.spare = null;
    this.cap = next ? next.sample.length : 0;
    this.sample = next?.sample ?? new Int32Array(0);
    this.pos = next?.pos ?? new Int32Array(0);
    this.mod = next?.mod ?? new Uint8Array(0);
    this.token = next?.token ?? new Int32Array(0);
    this.layer = next?.layer ?? new Int16Array(0);
    this.experts = next?.experts ?? new Int16Array(0);
    this.gates = next?.gates ?? new Float32Array(0);
    this.probs = next?.probs ?? new Float32Array(0);
    this.extra = next?.extra ?? extra.map((a) => new (a.constructor as new (n: number) => Int32Array<ArrayBuffer> | Uint16Array<ArrayBuffer>)(0));
    this.perm = next?.perm ?? new Int32Array(0);
    return { rows, sample, pos, mod, token, layer, experts, gates, probs, extra, perm };
  }

  /** Arrays of an earlier take(), written out: the next take() switches to them (the larger kept). */
  giveBack(cols: StageColumns): void {
    if (!this.spare || cols.sample.length > this.spare.sample.length) this.spare = cols;
  }

  /** Empty for the next shard (the arrays are kept); after order(). */
  clear(): void {
    for (const l of this.layers) this.seen[l] = 0;
    this.layers.length = 0;
    this.rows = 0;
    this.hasGates = true;
    this.inOrder = true;
  }

  private grow(cap: number): void {
    const { K, E } = this;
    const widen = <T extends StageColumn>(a: T, w: number): T => {
      const b = new (a.constructor as new (n: number) => T)(cap * w);
      b.set(a.subarray(0, this.rows * w));
      return b;
    };
    this.sample = widen(this.sample, 1);
    this.pos = widen(this.pos, 1);
    this.mod = widen(this.mod, 1);
    this.token = widen(this.token, 1);
    this.layer = widen(this.layer, 1);
    this.experts = widen(this.experts, K);
    this.gates = widen(this.gates, K);
    this.probs = widen(this.probs, E);
    this.extra = this.extra.map((a) => widen(a, 1));
    this.perm = new Int32Array(cap); // filled afresh by order()
    this.cap = cap;
  }
}

/**
 * Per layer: count its rows, list it when first seen, and tell whether its rows keep coming in
 * (sample, pos) order (false: some row came before the previous one). A loop of its own, see util/int-scan.ts.
 */
function trackOrder(layer: Int32Array, sample: Int32Array, pos: Int32Array, n: number, seen: Uint8Array, count: Int32Array, lastS: Int32Array, lastP: Int32Array, layers: number[]): boolean {
  let inOrder = true;
  for (let i = 0; i < n; i++) {
    const l = layer[i], s = sample[i], p = pos[i];
    if (!seen[l]) {
      seen[l] = 1;
      count[l] = 0;
      layers.push(l);
    } else if (s < lastS[l] || (s === lastS[l] && p < lastP[l])) inOrder = false;
    lastS[l] = s;
    lastP[l] = p;
    count[l]++;
  }
  return inOrder;
}

/** perm[next[layer of i]++] = i: a stable counting sort's scatter (a loop of its own, see util/int-scan.ts). */
function scatterByLayer(perm: Int32Array, next: Int32Array, layer: Int16Array, n: number): void {
  for (let i = 0; i < n; i++) perm[next[layer[i]]++] = i;
}
