import { renameSync } from 'node:fs';
import { AGG_TABLES, type AggQuery, type AggTable } from './aggregates.js';
import { groupOrder, groupPositions, type GroupNames, type GroupOrder } from './group-order.js';
import { TokenRuns, type TokenEntries } from './token-runs.js';
import { TOKEN_ROW_GROUP, writeTokenFile } from './parquet/token-file.js';
import { writeAggFile, type AggColumn, type AggRows } from './parquet/agg-file.js';

/**
 * The aggregates of SPEC §2 (defined in SQL in aggregates.ts), counted while the writer appends
 * rows, in typed arrays per group. Hand-written rather than SQL over the rows just written because
 * that second pass cost several times the write itself (co-activation expands every row into
 * k(k-1) pairs: 7 of 10 s for 262k top-8 rows); here each row costs a few hundred nanoseconds.
 * `moescope index` computes the same tables with the SQL of aggregates.ts, and
 * test/trace/agg-accumulator.test.ts checks that both agree on the same rows.
 *
 * Where one pass cannot be right, the table is left to that SQL after writing (`sqlTables`):
 * the repeat rate when a sample's rows of a layer are not contiguous and in position order, every
 * table when a sample's domain arrives after its rows or there are too many groups.
 */

/** Per group (layer, modality, domain, phase) sums; codes index the writer's dictionaries (-1 NULL). */
interface Group {
  layer: number;
  mod: number;
  dom: number;
  phase: number;
  cap: number; // expert slots allocated
  nAll: Float64Array;
  nTop1: Float64Array;
  nGate: Float64Array;
  nBad: Float64Array;
  tokens: number;
  gateRows: number;
  gateSumOne: number;
  gateTop1: number;
  gateMargin: number;
  gateMarginRows: number;
  probTop1: number;
  probMargin: number;
  probEntropy: number;
  probRows: number;
  /** i*E + j -> pairs; dense when E is small and known (32-bit counts, folded into coactTotal before they could overflow) */
  coact: Uint32Array | Map<number, number>;
  coactTotal: Float64Array | null;
  coactRows: number; // rows counted into coact since the last fold
}

/** One batch of rows in the writer's column form, with group codes resolved per row. */
export interface AccRows {
  n: number;
  K: number;
  sample: Int32Array;
  pos: Int32Array;
  token: Int32Array;
  layer: Int32Array;
  mod: Uint8Array;
  dom: Int32Array | null; // per row, -1 = NULL; null = all NULL
  phase: Uint16Array | null;
  experts: Int32Array;
  /** null: the producer recorded no gates (the gate sums are not counted) */
  gates: Float32Array | null;
  probs?: Float32Array;
}

const MAX_GROUPS = 20_000;
const SUM_FIELDS = ['tokens', 'gateRows', 'gateSumOne', 'gateTop1', 'gateMargin', 'gateMarginRows', 'probTop1', 'probMargin', 'probEntropy', 'probRows', 'coactRows'] as const;
/**
 * Rows held for the per-token counts before they move to disk, summed, as a run (token-runs.ts):
 * 2.5 MB of columns. (A hash table that summed them first cost more than the sort: at the size
 * that stayed in cache it summed few rows, 1.2 to 1, and its lookups were the writer's largest cost.)
 */
const TOKEN_SPILL = 1 << 17;
const DENSE_COACT_E = 512;

export class AggregateAccumulator {
  private readonly groups: Group[] = [];
  private readonly index = new Map<string, number>();
  private readonly fastIndex = new Map<number, number>();
  /** per layer, the previous row: whether there is one, sample, pos, top-1, group (repeat pairs) */
  private readonly prevHas = new Uint8Array(32768);
  private readonly prevSample = new Int32Array(32768);
  private readonly prevPos = new Int32Array(32768);
  private readonly prevTop1 = new Int32Array(32768);
  private readonly prevGid = new Int32Array(32768);
  private readonly repeat = new Map<number, Float64Array>(); // (gid * 2^21 + prevGid) -> [pairs, same]
  private readonly tokenSpill: number;
  /** per-token rows (gid, token, top-1 expert, 1) waiting for the next spill to disk, so memory stays flat; n used */
  private readonly pending: TokenEntries;
  private readonly runs: TokenRuns;
  /** group order at the last spill (group-order.ts), for as many groups as there were then */
  private order: Int32Array = new Int32Array(0);
  /** Tables that one pass could not count: computed from the written rows with SQL instead. */
  readonly sqlTables = new Set<AggTable>();
  private allSql = false;

  constructor(
    /**
     * names: the dictionaries the group codes index (growing as rows arrive); spillPrefix: path
     * prefix of the token-count runs (temporary files in the trace folder); tokenSpill (tests):
     * rows held for the per-token counts before they go to disk
     */
    private readonly opts: { numExperts: number; hasProb: boolean; names: GroupNames; spillPrefix: string; coactFoldRows?: number; tokenSpill?: number },
  ) {
    this.tokenSpill = opts.tokenSpill ?? TOKEN_SPILL;
    this.pending = pendingColumns(this.tokenSpill);
    this.runs = new TokenRuns(opts.spillPrefix, opts.numExperts - 1);
  }

  /** Everything goes to SQL (a fact about the input found after rows were counted). */
  giveUp(): void {
    this.allSql = true;
    for (const t of AGG_TABLES) this.sqlTables.add(t);
    this.groups.length = 0;
    this.index.clear();
    this.fastIndex.clear();
    this.repeat.clear();
  }

  private group(layer: number, mod: number, dom: number, phase: number): number {
    // the common case, no domain and no phase: a numeric key (a string per run costs more than the run)
    const fast = dom < 0 && phase < 0 ? layer * 256 + mod : -1;
    if (fast >= 0) {
      const g = this.fastIndex.get(fast);
      if (g !== undefined) return g;
    }
    const key = `${layer},${mod},${dom},${phase}`;
    let g = this.index.get(key);
    if (g !== undefined && fast >= 0) this.fastIndex.set(fast, g);
    if (g === undefined) {
      if (this.groups.length >= MAX_GROUPS) {
        this.giveUp();
        return -1;
      }
      g = this.groups.length;
      const E = this.opts.numExperts;
      const cap = E <= 4096 ? E : 64;
      const G: Group = {
        layer, mod, dom, phase, cap,
        nAll: new Float64Array(cap), nTop1: new Float64Array(cap), nGate: new Float64Array(cap), nBad: new Float64Array(cap),
        tokens: 0.5, gateRows: 0.5, gateSumOne: 0.5, gateTop1: 0.5, gateMargin: 0.5, gateMarginRows: 0.5,
        probTop1: 0.5, probMargin: 0.5, probEntropy: 0.5, probRows: 0.5,
        coact: E <= DENSE_COACT_E ? new Uint32Array(E * E) : new Map(), coactTotal: null, coactRows: 0.5,
      };
      // the sums start as doubles (0.5 above, zeroed here): a field that turns from a small integer
      // into a double changes the groups' map, and every optimized loop that reads groups was thrown
      // away with it (ten times in a run)
      for (const k of SUM_FIELDS) G[k] = 0;
      this.groups.push(G);
      this.index.set(key, g);
      if (fast >= 0) this.fastIndex.set(fast, g);
    }
    return g;
  }

  private grow(g: Group, e: number): void {
    let cap = g.cap;
    while (cap <= e) cap *= 2;
    const widen = (a: Float64Array) => {
      const b = new Float64Array(cap);
      b.set(a);
      return b;
    };
    g.nAll = widen(g.nAll);
    g.nTop1 = widen(g.nTop1);
    g.nGate = widen(g.nGate);
    g.nBad = widen(g.nBad);
    g.cap = cap;
  }

  add(r: AccRows): void {
    if (this.allSql) return;
    const { n, K, experts } = r;
    // rows come in runs of one group (a layer's tokens of one modality): count a run at a time
    for (let i0 = 0; i0 < n; ) {
      const i1 = runEnd(r, i0);
      const layer = r.layer[i0];
      const gid = this.group(layer, r.mod[i0], r.dom ? r.dom[i0] : -1, r.phase ? r.phase[i0] : -1);
      if (gid < 0) return;
      const G = this.groups[gid];
      if (G.cap < this.opts.numExperts) {
        // ids are < E (the writer checked); arrays of unknown-E traces grow to the largest id seen
        let maxE = 0;
        for (let x = i0 * K; x < i1 * K; x++) if (experts[x] > maxE) maxE = experts[x];
        if (maxE >= G.cap) this.grow(G, maxE);
      }
      this.countExperts(G, experts, K, i0, i1);
      G.tokens += i1 - i0;
      if (r.gates) countGates(G, r.gates, experts, K, i0, i1);
      if (r.probs) countProbs(G, r.probs, this.opts.numExperts, i0, i1);
      // the rows' (token, top-1 expert), spilled whenever the pending columns fill
      for (let from = i0; from < i1; ) {
        const take = Math.min(i1 - from, this.tokenSpill - this.pending.n);
        appendTokens(this.pending, gid, experts, K, r.token, from, from + take);
        from += take;
        if (this.pending.n === this.tokenSpill) this.spillTokens();
      }
      if (!this.sqlTables.has('repeat')) this.countRepeats(r, layer, gid, i0, i1);
      i0 = i1;
    }
  }

  /** n_all, n_top1 and co-activation pairs of the rows [i0, i1) of group G. */
  private countExperts(G: Group, experts: Int32Array, K: number, i0: number, i1: number): void {
    const c = G.coact;
    const dense = K >= 2 && c instanceof Uint32Array;
    if (dense) {
      // A cell grows once per row, or up to floor(K/2)*ceil(K/2) times if a caller repeated an id
      // within a row (importers and capture never do): fold into doubles before that could pass 2^32
      const perRow = Math.floor(K / 2) * Math.ceil(K / 2);
      if (G.coactRows + (i1 - i0) > (this.opts.coactFoldRows ?? Math.floor(0xffffffff / perRow))) foldCoact(G);
      G.coactRows += i1 - i0;
    }
    expertCounter(K, dense)(G.nAll, G.nTop1, dense ? (c as Uint32Array) : null, experts, i0 * K, i1 * K, this.opts.numExperts);
    if (K >= 2 && c instanceof Map) {
      for (let o = i0 * K; o < i1 * K; o += K) {
        for (let a = 0; a < K - 1; a++) {
          for (let b = a + 1; b < K; b++) {
            const key = experts[o + a] * 32768 + experts[o + b];
            c.set(key, (c.get(key) ?? 0) + 1);
          }
        }
      }
    }
  }

  /**
   * Repeat pairs: consecutive positions of one sample in one layer. One pass is right only when
   * each (sample, layer) arrives contiguous and in position order, samples ascending.
   */
  private countRepeats(r: AccRows, layer: number, gid: number, i0: number, i1: number): void {
    const { K, experts, sample: samples, pos: poss } = r;
    let ps = this.prevSample[layer], pp = this.prevPos[layer], pt = this.prevTop1[layer], pg = this.prevGid[layer];
    let has = this.prevHas[layer] === 1;
    // pairs within the run (previous row of the same group) are summed here, the Map touched once
    let runPairs = 0, runSame = 0;
    for (let i = i0; i < i1; i++) {
      const sample = samples[i], pos = poss[i], top1 = experts[i * K];
      if (has) {
        if (sample < ps || (sample === ps && pos <= pp)) {
          this.sqlTables.add('repeat');
          this.repeat.clear();
          return;
        }
        if (sample === ps && pos === pp + 1) {
          if (i > i0) {
            runPairs++;
            if (top1 === pt) runSame++;
          } else {
            const v = this.repeatPair(gid * 2 ** 21 + pg);
            v[0]++;
            if (top1 === pt) v[1]++;
          }
        }
      }
      has = true;
      ps = sample;
      pp = pos;
      pt = top1;
      pg = gid;
    }
    if (runPairs > 0) {
      const v = this.repeatPair(gid * 2 ** 21 + gid);
      v[0] += runPairs;
      v[1] += runSame;
    }
    this.prevHas[layer] = 1;
    this.prevSample[layer] = ps;
    this.prevPos[layer] = pp;
    this.prevTop1[layer] = pt;
    this.prevGid[layer] = pg;
  }

  /** [pairs, same top-1] of (group, previous row's group) = gid * 2^21 + prevGid */
  private repeatPair(key: number): Float64Array {
    let v = this.repeat.get(key);
    if (!v) this.repeat.set(key, (v = new Float64Array(2)));
    return v;
  }

  /**
   * Move the token counts to disk as a sorted run (token-runs.ts), so memory stays flat: with many
   * distinct (token, expert) pairs a table would grow with the input.
   */
  private spillTokens(): void {
    if (this.order.length !== this.groups.length) this.order = groupPositions(this.groups, this.opts.names);
    this.runs.spill(this.pending, this.order, true); // the pending rows' counts are all 1
    this.pending.n = 0;
  }

  /**
   * agg-token.parquet at `file`: the runs merged in the final order (the group order of the last
   * spill covers every group), written under a temporary name and renamed; `groups` gives the
   * keys (dictionaries reduced to the names groups use).
   */
  private writeTokens(file: string, groups: GroupOrder): void {
    this.spillTokens();
    const tmp = `${this.opts.spillPrefix}agg.parquet`;
    writeTokenFile(tmp, groups, (rowGroup) => this.runs.merge(this.order, TOKEN_ROW_GROUP, rowGroup));
    renameSync(tmp, file);
  }

  /**
   * Per table this accumulator counted, how to write it: the small ones from their arrays here
   * (parquet/agg-file.ts), the per-token one by merging its spilled runs (token-runs.ts).
   */
  tables(gatesDropped: boolean): Partial<Record<AggTable, AggQuery>> {
    if (this.allSql) return {};
    const groups = groupOrder(this.groups, this.opts.names);
    // each table built when it is written (one at a time in memory), its rows in group order (so the sort finds them in order)
    const file = (rows: () => AggRows) => ({ write: (path: string) => writeAggFile(path, groups, rows()) });
    const out: Partial<Record<AggTable, AggQuery>> = {
      counts: file(() => this.countsRows(groups.order, gatesDropped)),
      tokens: file(() => this.tokensRows(groups.order, gatesDropped)),
      coact: file(() => this.coactRows(groups.order)),
    };
    if (!this.sqlTables.has('repeat')) out.repeat = file(() => this.repeatRows(groups));
    out.token = { write: (file) => this.writeTokens(file, groups) };
    return out;
  }

  /** counts: per group and expert chosen at least once. */
  private countsRows(order: Int32Array, gatesDropped: boolean): AggRows {
    const G = this.groups;
    let m = 0;
    for (const g of G) for (let e = 0; e < g.cap; e++) if (g.nAll[e] > 0) m++;
    const gid = new Int32Array(m), ex = new Int32Array(m), all = new Float64Array(m), top1 = new Float64Array(m), gate = new Float64Array(m), bad = new Float64Array(m);
    let o = 0;
    for (const gi of order) {
      const g = G[gi];
      for (let e = 0; e < g.cap; e++) {
        if (!(g.nAll[e] > 0)) continue;
        gid[o] = gi;
        ex[o] = e;
        all[o] = g.nAll[e];
        top1[o] = g.nTop1[e];
        gate[o] = gatesDropped ? 0 : g.nGate[e];
        bad[o++] = gatesDropped ? g.nAll[e] : g.nBad[e];
      }
    }
    return {
      gid,
      columns: [
        { name: 'expert', type: 'SMALLINT', values: ex }, { name: 'n_all', type: 'BIGINT', values: all }, { name: 'n_top1', type: 'BIGINT', values: top1 },
        { name: 'n_gate', type: 'DOUBLE', values: gate }, { name: 'n_gate_bad', type: 'BIGINT', values: bad },
      ],
    };
  }

  /** tokens: one row per group; the probability sums NULL without probabilities (and the margin with one expert). */
  private tokensRows(order: Int32Array, gatesDropped: boolean): AggRows {
    const G = this.groups;
    const m = G.length;
    const p = this.opts.hasProb, E = this.opts.numExperts;
    const col = () => new Float64Array(m);
    const c = {
      tokens: col(), empty: col(), gateRows: col(), sumOne: col(), top1: col(), margin: col(), marginRows: col(),
      probTop1: col(), probMargin: col(), probEntropy: col(), probRows: col(),
    };
    const noProb = new Uint8Array(m), noMargin = new Uint8Array(m);
    order.forEach((gi, o) => {
      const g = G[gi];
      c.tokens[o] = g.tokens;
      if (!gatesDropped) {
        c.gateRows[o] = g.gateRows;
        c.sumOne[o] = g.gateSumOne;
        c.top1[o] = g.gateTop1;
        c.margin[o] = g.gateMargin;
        c.marginRows[o] = g.gateMarginRows;
      }
      noProb[o] = p && g.probRows > 0 ? 0 : 1;
      noMargin[o] = noProb[o] || E < 2 ? 1 : 0;
      c.probTop1[o] = g.probTop1;
      c.probMargin[o] = g.probMargin;
      c.probEntropy[o] = g.probEntropy;
      c.probRows[o] = p ? g.probRows : 0;
    });
    const big = (name: string, values: Float64Array): AggColumn => ({ name, type: 'BIGINT', values });
    const dbl = (name: string, values: Float64Array, nulls?: Uint8Array): AggColumn => ({ name, type: 'DOUBLE', values, nulls });
    return {
      gid: Int32Array.from(order),
      columns: [
        big('tokens', c.tokens), big('empty', c.empty), big('gate_rows', c.gateRows), big('gate_sum_one', c.sumOne),
        dbl('gate_top1_sum', c.top1), dbl('gate_margin_sum', c.margin), big('gate_margin_rows', c.marginRows),
        dbl('prob_top1_sum', c.probTop1, noProb), dbl('prob_margin_sum', c.probMargin, noMargin), dbl('prob_entropy_sum', c.probEntropy, noProb),
        big('prob_rows', c.probRows),
      ],
    };
  }

  /** repeat: pairs per group and the previous row's modality and phase (summed over its other keys). */
  private repeatRows(groups: GroupOrder): AggRows {
    const sums = new Map<string, { gid: number; mod: number; phase: number; pairs: number; same: number }>();
    for (const [k, v] of this.repeat) {
      const gid = Math.floor(k / 2 ** 21), prev = k % 2 ** 21;
      const mod = groups.mod[prev], phase = groups.phase[prev];
      const key = `${gid},${mod},${phase}`;
      const s = sums.get(key);
      if (s) {
        s.pairs += v[0];
        s.same += v[1];
      } else sums.set(key, { gid, mod, phase, pairs: v[0], same: v[1] });
    }
    const rows = [...sums.values()];
    return {
      gid: Int32Array.from(rows, (r) => r.gid),
      columns: [
        { name: 'prev_modality', type: 'VARCHAR', codes: Int32Array.from(rows, (r) => r.mod), names: groups.names.modality },
        { name: 'prev_phase', type: 'VARCHAR', codes: Int32Array.from(rows, (r) => r.phase), names: groups.names.phase },
        { name: 'pairs', type: 'BIGINT', values: Float64Array.from(rows, (r) => r.pairs) },
        { name: 'same', type: 'BIGINT', values: Float64Array.from(rows, (r) => r.same) },
      ],
    };
  }

  /** coact: (i, j) for i != j, both ways: the pairs counted as (i, j) plus as (j, i). */
  private coactRows(order: Int32Array): AggRows {
    const E = this.opts.numExperts;
    // each group's rows in (i, j) order (sparse ones as they come), visited twice: to count them, then to fill the columns
    const visit = (row: (gid: number, i: number, j: number, n: number) => void) => {
      for (const gi of order) {
        const { coact: c, coactTotal: t } = this.groups[gi];
        if (c instanceof Uint32Array) {
          for (let i = 0; i < E; i++) {
            for (let j = 0; j < E; j++) {
              if (i === j) continue;
              const a = Math.min(i, j) * E + Math.max(i, j), b = Math.max(i, j) * E + Math.min(i, j);
              const v = c[a] + c[b] + (t ? t[a] + t[b] : 0);
              if (v > 0) row(gi, i, j, v);
            }
          }
          continue;
        }
        const sym = new Map<number, number>();
        for (const [k, v] of c) {
          const a = Math.floor(k / 32768), b = k % 32768;
          if (a === b) continue;
          const key = Math.min(a, b) * 32768 + Math.max(a, b);
          sym.set(key, (sym.get(key) ?? 0) + v);
        }
        for (const [k, v] of sym) {
          row(gi, Math.floor(k / 32768), k % 32768, v);
          row(gi, k % 32768, Math.floor(k / 32768), v);
        }
      }
    };
    let m = 0;
    visit(() => m++);
    const gid = new Int32Array(m), ii = new Int32Array(m), jj = new Int32Array(m), nn = new Float64Array(m);
    let o = 0;
    visit((g, i, j, n) => {
      gid[o] = g;
      ii[o] = i;
      jj[o] = j;
      nn[o++] = n;
    });
    return {
      gid,
      columns: [{ name: 'i', type: 'SMALLINT', values: ii }, { name: 'j', type: 'SMALLINT', values: jj }, { name: 'n', type: 'BIGINT', values: nn }],
    };
  }
}

/** The pending per-token columns: room for `cap` rows, each counted once. */
function pendingColumns(cap: number): TokenEntries {
  return { n: 0, gid: new Int32Array(cap), token: new Int32Array(cap), expert: new Int32Array(cap), count: new Float64Array(cap).fill(1) };
}

/** Rows [i0, i1) of group gid into the pending per-token columns (their counts stay 1): a loop of its own, see util/int-scan.ts. */
function appendTokens(p: TokenEntries, gid: number, experts: Int32Array, K: number, token: Int32Array, i0: number, i1: number): void {
  const { gid: g, token: t, expert: x } = p;
  let o = p.n;
  for (let i = i0; i < i1; i++, o++) {
    g[o] = gid;
    t[o] = token[i];
    x[o] = experts[i * K];
  }
  p.n = o;
}

/** The end of the run of rows from i0 that share one group (layer, modality, domain, phase). */
function runEnd(r: AccRows, i0: number): number {
  const { n, layer, mod, dom, phase } = r;
  const l = layer[i0], m = mod[i0];
  let i1 = i0 + 1;
  while (i1 < n && layer[i1] === l && mod[i1] === m) i1++;
  // domain and phase split the run further, when present
  if (dom) for (let i = i0 + 1; i < i1; i++) if (dom[i] !== dom[i0]) i1 = i;
  if (phase) for (let i = i0 + 1; i < i1; i++) if (phase[i] !== phase[i0]) i1 = i;
  return i1;
}

/**
 * Gate sums of the rows [i0, i1) of group G. A row's gates are usable when their sum is > 0 and
 * not NaN (SQL: gate not NULL); without gates n_gate_bad is n_all (written so by tables()).
 */
function countGates(G: Group, gates: Float32Array, experts: Int32Array, K: number, i0: number, i1: number): void {
  const s = gateSums(G.nGate, G.nBad, gates, experts, K, i0, i1, GATE_SUMS);
  // summed per run, then into the group: the order of additions the stored sums were made with
  G.gateRows += s[0];
  G.gateSumOne += s[1];
  G.gateTop1 += s[2];
  if (K >= 2) {
    G.gateMargin += s[3];
    G.gateMarginRows += s[0];
  }
}

/** gateSums' results: rows with usable gates, those summing to 1, the top-1 and margin sums. */
const GATE_SUMS = new Float64Array(4);

/**
 * countGates' loop, a function of its own that touches no group object: the group's fields read
 * after a loop that was optimized mid-call had no type feedback yet, and the code was thrown away
 * call after call (util/int-scan.ts).
 */
function gateSums(nGate: Float64Array, nBad: Float64Array, gates: Float32Array, experts: Int32Array, K: number, i0: number, i1: number, out: Float64Array): Float64Array {
  let gateRows = 0, sumOne = 0, top1Sum = 0, marginSum = 0;
  for (let i = i0; i < i1; i++) {
    const o = i * K;
    let sum = 0;
    for (let s = 0; s < K; s++) sum += gates[o + s];
    if (sum > 0 && !Number.isNaN(sum)) {
      for (let s = 0; s < K; s++) {
        const w = gates[o + s] / sum;
        if (w === w) nGate[experts[o + s]] += w;
        else nBad[experts[o + s]]++;
      }
      gateRows++;
      if (Math.abs(sum - 1) < 1e-3) sumOne++;
      top1Sum += gates[o];
      if (K >= 2) marginSum += gates[o] - gates[o + 1];
    } else for (let s = 0; s < K; s++) nBad[experts[o + s]]++;
  }
  out[0] = gateRows;
  out[1] = sumOne;
  out[2] = top1Sum;
  out[3] = marginSum;
  return out;
}

/** Top-1 probability, margin and entropy of the full distributions (E per row) of rows [i0, i1). */
function countProbs(G: Group, probs: Float32Array, E: number, i0: number, i1: number): void {
  for (let i = i0; i < i1; i++) {
    const p0 = i * E;
    let m1 = -Infinity, m2 = -Infinity, h = 0;
    for (let e = 0; e < E; e++) {
      const p = probs[p0 + e];
      if (p > m1) {
        m2 = m1;
        m1 = p;
      } else if (p > m2) m2 = p;
      if (p > 0) h -= p * Math.log2(p);
    }
    G.probTop1 += m1;
    if (E >= 2) G.probMargin += m1 - m2;
    G.probEntropy += h;
  }
  G.probRows += i1 - i0;
}

/** Move a group's 32-bit pair counts into its double totals. */
function foldCoact(g: Group): void {
  const c = g.coact as Uint32Array;
  g.coactTotal ??= new Float64Array(c.length);
  for (let x = 0; x < c.length; x++) g.coactTotal[x] += c[x];
  c.fill(0);
  g.coactRows = 0;
}

/**
 * Per row of K ids in ex[from, to): n_top1 of its first id, n_all of each, and when c is given,
 * c[e_a * E + e_b]++ for every slot pair a < b.
 */
type ExpertCounter = (nAll: Float64Array, nTop1: Float64Array, c: Uint32Array | null, ex: Int32Array, from: number, to: number, E: number) => void;
const expertCounters = new Map<number, ExpertCounter>();

/**
 * The count specialised for one K, unrolled: the row's ids are read once and stay in registers for
 * all of its counts (the largest per-row cost of the writer; about twice as fast as the nested
 * loops V8 makes of the generic version).
 */
function expertCounter(K: number, pairs: boolean): ExpertCounter {
  const key = K * 2 + (pairs ? 1 : 0);
  let f = expertCounters.get(key);
  if (f) return f;
  if (K > 16) {
    f = (nAll, nTop1, c, ex, from, to, E) => {
      for (let o = from; o < to; o += K) {
        nTop1[ex[o]]++;
        for (let a = 0; a < K; a++) nAll[ex[o + a]]++;
        for (let a = 0; c && a < K - 1; a++) {
          const ea = ex[o + a] * E;
          for (let b = a + 1; b < K; b++) c[ea + ex[o + b]]++;
        }
      }
    };
  } else {
    const slots = Array.from({ length: K }, (_, s) => s);
    const ids = slots.map((s) => `const e${s} = ex[o + ${s}];`).join(' ');
    const all = slots.map((s) => `nAll[e${s}]++;`).join(' ');
    const pairCounts = slots.slice(0, -1).map((a) => `r = e${a} * E; ${slots.slice(a + 1).map((b) => `c[r + e${b}]++;`).join(' ')}`).join('\n');
    const body = `${ids}\nnTop1[e0]++; ${all}\n${pairs ? `let r;\n${pairCounts}` : ''}`;
    f = new Function('nAll', 'nTop1', 'c', 'ex', 'from', 'to', 'E', `'use strict';\nfor (let o = from; o < to; o += ${K}) {\n${body}\n}`) as ExpertCounter;
  }
  expertCounters.set(key, f);
  return f;
}
