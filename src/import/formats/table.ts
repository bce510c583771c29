import { statSync } from 'node:fs';
import type { DuckDBConnection } from '@duckdb/node-api';
import { InputError } from '../../util/errors.js';
import { LIMITS, checkBigInt } from '../../util/limits.js';
import { MODALITIES } from '../../analysis/groups.js';
import type { ReaderContext } from '../options.js';
import type { ImportRecord } from '../records.js';
import { sqlString } from '../../util/sql.js';

/**
 * Any table of routing rows — CSV, TSV, Parquet or JSONL, read by DuckDB (read_csv, read_parquet,
 * read_json) — with the routing columns of SPEC §2: `layer` and `expert` (a list, one id, or a
 * string "5 2" / "[5, 2]"), optional `gate`, `sample`, `pos`, `token`, `modality`, `domain`,
 * `phase`. Older names: `seq` (sample), `token_id` (token), `expert_ids` (expert), `weights`
 * (gate). `layer` may be a tensor name (ffn_moe_topk-12, blk.12.ffn_moe_topk): its last number.
 * Without `pos` a row's position is its rank within its (sample, layer) in file order, so a
 * token may be routed in fewer layers than others (llama.cpp batches: the last layer routes only
 * the output rows). `layer` is the decoder layer (or --moe-layers maps MoE ordinals).
 */
const ALIASES: Record<string, string[]> = {
  sample: ['sample', 'seq', 'seq_id', 'sequence', 'request_id'],
  pos: ['pos', 'position'],
  layer: ['layer', 'layer_id', 'tensor'],
  expert: ['expert', 'expert_ids', 'experts', 'topk_ids', 'selected_experts'],
  gate: ['gate', 'weights', 'gates', 'topk_weights', 'expert_weights'],
  token: ['token', 'token_id', 'input_id'],
  modality: ['modality'],
  domain: ['domain'],
  phase: ['phase'],
};

const q = sqlString;
function ident(s: string): string {
  return `"${s.replace(/"/g, '""')}"`;
}

function source(path: string): string {
  const p = path.toLowerCase();
  if (p.endsWith('.parquet')) return `read_parquet(${q(path)})`;
  if (p.endsWith('.jsonl') || p.endsWith('.ndjson') || p.endsWith('.json')) return `read_json(${q(path)}, format = 'newline_delimited')`;
  // the dialect is fixed (not sniffed), so a broken quote is an error rather than another dialect
  const dialect = `header = true, comment = '#', quote = '"', escape = '"'`;
  if (p.endsWith('.tsv')) return `read_csv(${q(path)}, ${dialect}, delim = '\t')`;
  return `read_csv(${q(path)}, ${dialect}, delim = ',')`;
}

/** An expression giving a BIGINT[] (ids) or DOUBLE[] (gates) whatever the column's type. */
function listExpr(col: string, type: string, elem: 'BIGINT' | 'DOUBLE'): string {
  const c = ident(col);
  // TRY_CAST: a value that is not a number becomes NULL, reported with its line by the reader
  if (type.endsWith('[]')) return `list_transform(${c}, x -> TRY_CAST(x AS ${elem}))`;
  if (type === 'VARCHAR') return `list_transform(list_filter(string_split_regex(trim(${c}, '[] '), '[\\s,;|]+'), x -> x <> ''), x -> TRY_CAST(x AS ${elem}))`;
  return `[TRY_CAST(${c} AS ${elem})]`;
}

async function describe(conn: DuckDBConnection, src: string, file: string): Promise<Map<string, string>> {
  try {
    const r = await conn.runAndReadAll(`DESCRIBE SELECT * FROM ${src}`);
    return new Map(r.getRowObjectsJS().map((o) => [String(o.column_name).toLowerCase() + '\u0000' + String(o.column_name), String(o.column_type)]));
  } catch (e) {
    throw new InputError(`${file}: cannot read as a table (${firstLine(e)})`);
  }
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0].slice(0, 300);
}

export async function* readTable(inputs: string[], ctx: ReaderContext): AsyncGenerator<ImportRecord> {
  // loaded here, not at the top: the other formats' imports run without DuckDB in the main thread
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const inst = await DuckDBInstance.create(':memory:', { memory_limit: '256MB', threads: '2' });
  const conn = await inst.connect();
  try {
    for (const [fi, file] of inputs.entries()) {
      try {
        if (!statSync(file).isFile()) throw new Error();
      } catch {
        throw new InputError(`${file}: not a regular file`);
      }
      const src = source(file);
      const low = file.toLowerCase();
      const lineOffset = low.endsWith('.jsonl') || low.endsWith('.ndjson') || low.endsWith('.json') ? 0 : 1; // CSV: the header is line 1
      const described = await describe(conn, src, file);
      const cols = new Map<string, { name: string; type: string }>();
      for (const [k, type] of described) {
        const [lower, name] = k.split('\u0000');
        for (const [canon, names] of Object.entries(ALIASES)) if (!cols.has(canon) && names.includes(lower)) cols.set(canon, { name, type });
      }
      if (!cols.has('layer') || !cols.has('expert')) throw new InputError(`${file}: needs a layer column and an expert column (expert, expert_ids); it has ${[...described.keys()].map((k) => k.split('\u0000')[1]).join(', ')}`);
      const c = (k: string) => cols.get(k)!;
      const layerC = c('layer');
      const layerExpr = layerC.type === 'VARCHAR' ? `CASE WHEN regexp_matches(${ident(layerC.name)}, '^\\s*(\\d+|[\\w.]*?[-.]\\d+(\\.[\\w_]+)?)\\s*$') THEN TRY_CAST(regexp_extract(${ident(layerC.name)}, '(\\d+)\\D*$', 1) AS BIGINT) END` : `TRY_CAST(${ident(layerC.name)} AS BIGINT)`;
      const sampleExpr = cols.has('sample') ? `${ident(c('sample').name)}::VARCHAR` : `'0'`;
      const sel = [
        `row_number() OVER () AS _line`,
        `${sampleExpr} AS _sample`,
        `${layerExpr} AS _layer`,
        `${listExpr(c('expert').name, c('expert').type, 'BIGINT')} AS _expert`,
        cols.has('gate') ? `${listExpr(c('gate').name, c('gate').type, 'DOUBLE')} AS _gate` : `NULL::DOUBLE[] AS _gate`,
        cols.has('pos') ? `${ident(c('pos').name)} AS _pos0, TRY_CAST(${ident(c('pos').name)} AS BIGINT) AS _pos` : `NULL AS _pos0, NULL::BIGINT AS _pos`,
        cols.has('token') ? `${ident(c('token').name)} AS _token0, TRY_CAST(${ident(c('token').name)} AS BIGINT) AS _token` : `NULL AS _token0, NULL::BIGINT AS _token`,
        cols.has('modality') ? `${ident(c('modality').name)}::VARCHAR AS _modality` : `NULL::VARCHAR AS _modality`,
        cols.has('domain') ? `${ident(c('domain').name)}::VARCHAR AS _domain` : `NULL::VARCHAR AS _domain`,
        cols.has('phase') ? `${ident(c('phase').name)}::VARCHAR AS _phase` : `NULL::VARCHAR AS _phase`,
      ];
      // positions: given, or the rank of the row within its (sample, layer) in file order
      const sql = `WITH src AS (SELECT ${sel.join(', ')} FROM ${src}),
        ranked AS (SELECT *, coalesce(_pos, row_number() OVER (PARTITION BY _sample, _layer ORDER BY _line) - 1) AS _p FROM src)
        SELECT _line, _sample, _layer, _expert, _gate, _p, _token, _modality, _domain, _phase, _pos0, _token0
        FROM ranked ORDER BY min(_line) OVER (PARTITION BY _sample), _sample, _layer, _p, _line`;
      let result;
      try {
        result = await conn.stream(sql);
      } catch (e) {
        throw new InputError(`${file}: ${firstLine(e)}`);
      }
      let cur: SampleRows | null = null;
      try {
        for await (const rows of result.yieldRowsJs()) {
          for (const row of rows) {
            const where = file.toLowerCase().endsWith('.parquet') ? `${file}: row ${Number(row[0])}` : `${file}:${Number(row[0]) + lineOffset}`;
            const skey = String(row[1]);
            if (!cur || cur.key !== skey) {
              if (cur) yield* cur.records(ctx);
              cur = new SampleRows(skey, inputs.length > 1 ? `${fi}:${skey}` : skey, file, cols.has('sample'));
            }
            cur.add(where, row);
          }
        }
      } catch (e) {
        if (e instanceof InputError) throw e;
        throw new InputError(`${file}: ${firstLine(e)}`);
      }
      if (cur) yield* cur.records(ctx);
      else throw new InputError(`${file}: no routing rows`);
    }
  } finally {
    conn.closeSync();
    inst.closeSync();
  }
}

const int32 = (where: string, what: string, v: unknown, min = -(2 ** 31), max = 2 ** 31 - 1): number => {
  if (typeof v === 'bigint') return checkBigInt(`${where}: ${what}`, v, min, max);
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max) return v;
  throw new InputError(`${where}: ${what} ${JSON.stringify(typeof v === 'bigint' ? String(v) : v)} is not an integer in ${min}..${max}`);
};

/** One sample's rows (DuckDB sorted them by sample, layer, position), turned into records. */
class SampleRows {
  private readonly layers = new Map<number, { where: string; pos: number[]; ids: number[]; gates: number[] | null; phase: string[] }>();
  private readonly token = new Map<number, number>();
  private readonly modality = new Map<number, number>();
  private domain: string | null = null;
  private K = 0;
  private first = '';
  private maxPos = -1;
  constructor(readonly name: string, readonly key: string, readonly file: string, readonly hasSampleColumn: boolean) {}

  add(where: string, row: unknown[]): void {
    const [, , layerV, expertV, gateV, posV, tokenV, modV, domV, phaseV, pos0, token0] = row;
    if (posV === null && pos0 !== null) throw new InputError(`${where}: position ${JSON.stringify(String(pos0))} is not an integer`);
    if (tokenV === null && token0 !== null) throw new InputError(`${where}: token id ${JSON.stringify(String(token0))} is not an integer`);
    if (!this.first) this.first = where;
    if (layerV === null) throw new InputError(`${where}: layer is missing or not a layer number / tensor name`);
    const layer = int32(where, 'layer', layerV, 0, LIMITS.layers - 1);
    const pos = int32(where, 'position', posV, 0, LIMITS.positions - 1);
    if (!Array.isArray(expertV) || expertV.length === 0) throw new InputError(`${where}: no expert ids`);
    if (this.K === 0) this.K = expertV.length;
    if (expertV.length !== this.K) throw new InputError(`${where}: ${expertV.length} expert ids, earlier rows have ${this.K}`);
    if (this.K > LIMITS.topK) throw new InputError(`${where}: ${this.K} expert ids per row is more than ${LIMITS.topK}`);
    let L = this.layers.get(layer);
    if (!L) this.layers.set(layer, (L = { where, pos: [], ids: [], gates: gateV === null ? null : [], phase: [] }));
    if ((gateV === null) !== (L.gates === null)) throw new InputError(`${where}: some rows have gates and some do not`);
    if (L.pos.length && L.pos[L.pos.length - 1] === pos) throw new InputError(`${where}: position ${pos} routed twice in layer ${layer}${this.hasSampleColumn ? ` of sample ${this.name}` : ''}`);
    L.pos.push(pos);
    for (const e of expertV) {
      if (e === null) throw new InputError(`${where}: an expert id is not an integer`);
      L.ids.push(int32(where, 'expert id', e, 0, LIMITS.experts - 1));
    }
    if (gateV !== null) {
      if (!Array.isArray(gateV) || gateV.length !== this.K) throw new InputError(`${where}: ${Array.isArray(gateV) ? gateV.length : 0} gates for ${this.K} expert ids`);
      for (const g of gateV) {
        if (typeof g !== 'number' || !Number.isFinite(g)) throw new InputError(`${where}: gate ${g === null ? '(not a number)' : String(g)} is not a finite number`);
        L.gates!.push(g);
      }
    }
    L.phase.push(phaseV === null ? '' : String(phaseV));
    if (pos > this.maxPos) this.maxPos = pos;
    if (tokenV !== null && !this.token.has(pos)) this.token.set(pos, int32(where, 'token id', tokenV));
    if (modV !== null && !this.modality.has(pos)) {
      const m = (MODALITIES as readonly string[]).indexOf(String(modV));
      if (m < 0) throw new InputError(`${where}: modality ${JSON.stringify(modV)} is not one of ${MODALITIES.join(', ')}`);
      this.modality.set(pos, m);
    }
    if (domV !== null && this.domain === null) this.domain = String(domV);
  }

  *records(ctx: ReaderContext): Generator<ImportRecord> {
    const rows = this.maxPos + 1;
    let ids: Int32Array | null = null;
    if (this.token.size) {
      ids = new Int32Array(rows).fill(-1);
      for (const [p, t] of this.token) ids[p] = t;
    }
    let modality: Uint8Array | undefined;
    if (this.modality.size) {
      modality = new Uint8Array(rows).fill(1);
      for (const [p, m] of this.modality) modality[p] = m;
    }
    const anyPhase = [...this.layers.values()].some((l) => l.phase.some((p) => p !== ''));
    if (anyPhase) ctx.meta.has_phase = true;
    yield { kind: 'sample', key: this.key, where: this.first, rows, ids, hints: modality ? { modality } : {}, source: `${this.file}${this.hasSampleColumn ? ` sample ${this.name}` : ''}`, domain: this.domain };
    for (const [layer, L] of [...this.layers].sort((a, b) => a[0] - b[0])) {
      yield {
        kind: 'layer', key: this.key, where: L.where, layer, layerIndex: ctx.opts.moeLayers ? 'moe' : 'decoder',
        pos: Int32Array.from(L.pos),
        ids: { data: Int32Array.from(L.ids), K: this.K, weights: L.gates ? Float32Array.from(L.gates) : null, order: 'unranked' },
        phase: anyPhase ? L.phase : undefined,
      };
    }
    yield { kind: 'end', key: this.key, where: this.first };
  }
}
