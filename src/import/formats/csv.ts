import { InputError } from '../../util/errors.js';
import { readLines } from '../lines.js';
import { MOD_IMAGE, MOD_SPECIAL, MOD_TEXT, resolveTokens, type ResolvedTokens } from '../modality.js';
import type { FormatResult, ImportContext } from '../options.js';
import { sortTopK } from '../routing.js';

/**
 * llama.cpp-style MoE traces: a CSV with a header and one row per token per MoE layer, as an eval
 * callback on the `ffn_moe_topk-N` tensors writes them:
 *   layer,expert_ids[,weights][,token_id][,pos][,seq]
 *   0,"5 2",...
 * `layer` is a number or the tensor name (ffn_moe_topk-12, blk.12.ffn_moe_topk); expert_ids and
 * weights are lists separated by spaces, ';', '|' or (quoted) commas, brackets allowed. Without a
 * `pos` column a token's position is its row's rank within its (seq, layer), i.e. rows of a layer
 * are in token order, however layers interleave. Without `seq` the file is one sequence.
 */
const COLS: Record<string, string[]> = {
  layer: ['layer', 'layer_id', 'il', 'tensor', 'name'],
  experts: ['expert_ids', 'experts', 'ids', 'selected_experts', 'topk_ids', 'expert'],
  weights: ['weights', 'expert_weights', 'gates', 'gate', 'topk_weights', 'probs'],
  tokenId: ['token_id', 'token_ids', 'input_id', 'id'],
  pos: ['pos', 'position', 'token_idx', 'token_index', 'token'],
  seq: ['seq', 'seq_id', 'sample', 'request', 'request_id', 'sequence'],
};
const CHUNK = 8192;

export async function importCsv(inputs: string[], ctx: ImportContext): Promise<FormatResult> {
  const { sink, opts } = ctx;
  let sawWeights = false;
  let sawNoWeights = false;
  const samples = new Map<string, { sample: number; side: ResolvedTokens | null; layers: Map<number, { next: number; run: number; lastMod: number }>; where: string }>();
  for (const file of inputs) {
    let col: Record<string, number> | null = null;
    let K = 0;
    let batch: Row[] = [];
    const emit = async () => {
      // group the batch by (sample, layer) so each sink call has one layer
      const groups = new Map<string, Row[]>();
      for (const r of batch) {
        const k = `${r.sample}:${r.layer}`;
        const g = groups.get(k);
        if (g) g.push(r);
        else groups.set(k, [r]);
      }
      for (const rows of groups.values()) {
        const n = rows.length;
        const ids = new Int32Array(n * K);
        const w = rows[0].weights ? new Float32Array(n * K) : null;
        for (let i = 0; i < n; i++) {
          ids.set(rows[i].experts, i * K);
          if (w) w.set(rows[i].weights!, i * K);
        }
        const where = `${file}:${rows[0].line}`;
        const routed = sortTopK(where, ids, w, n, K, sink.numExperts, 'row');
        await sink.add({
          where, sample: rows[0].sample, layer: rows[0].layer,
          pos: Int32Array.from(rows, (r) => r.pos), token: Int32Array.from(rows, (r) => r.token),
          modality: Uint8Array.from(rows, (r) => r.mod), routed, K,
        });
      }
      batch = [];
    };
    for await (const { n, text } of readLines(file)) {
      if (text.trim() === '' || text.startsWith('#')) continue;
      const where = `${file}:${n}`;
      const cells = splitCsv(text, where);
      if (!col) {
        col = header(cells, where);
        continue;
      }
      if (cells.length < Object.keys(col).length) throw new InputError(`${where}: ${cells.length} fields, the header has more (truncated line?)`);
      const layer = parseLayer(cells[col.layer], where);
      const experts = parseList(cells[col.experts], where, 'expert_ids', true);
      if (K === 0) K = experts.length;
      if (experts.length !== K || K === 0) throw new InputError(`${where}: ${experts.length} expert ids, earlier rows have ${K}`);
      let weights: number[] | null = null;
      if (col.weights !== undefined) {
        weights = parseList(cells[col.weights], where, 'weights', false);
        if (weights.length !== K) throw new InputError(`${where}: ${weights.length} weights for ${K} expert ids`);
        sawWeights = true;
      } else sawNoWeights = true;
      const seqKey = col.seq !== undefined ? cells[col.seq].trim() : '';
      let s = samples.get(seqKey);
      if (!s) {
        const sample = await sink.addSample('', `${file}${col.seq !== undefined ? ` seq ${seqKey}` : ''}`);
        let side: ResolvedTokens | null = null;
        if (ctx.side) {
          const e = await ctx.side.get(sample, where);
          const len = e.ids?.length ?? e.hints.modality?.length ?? e.hints.imageMask?.length ?? e.hints.mmTokenTypeIds?.length ?? 0;
          side = resolveTokens(e.where, len, e.ids, e.hints, opts.rules);
        }
        s = { sample, side, layers: new Map(), where };
        samples.set(seqKey, s);
      }
      let st = s.layers.get(layer);
      if (!st) s.layers.set(layer, (st = { next: 0, run: 0, lastMod: -1 }));
      let pos: number;
      if (col.pos !== undefined) {
        pos = Number(cells[col.pos]);
        if (!Number.isInteger(pos) || pos < 0) throw new InputError(`${where}: position ${JSON.stringify(cells[col.pos])} is not a non-negative integer`);
      } else pos = st.next;
      st.next = pos + 1;
      let mod = MOD_TEXT;
      let token = -1;
      if (s.side) {
        if (pos >= s.side.modality.length) throw new InputError(`${where}: position ${pos} but the modality side file has ${s.side.modality.length} tokens for this sequence`);
        mod = s.side.modality[pos];
        token = s.side.token[pos];
      } else if (col.tokenId !== undefined) {
        const id = Number(cells[col.tokenId]);
        if (!Number.isInteger(id)) throw new InputError(`${where}: token_id ${JSON.stringify(cells[col.tokenId])} is not an integer`);
        token = id;
        if (opts.rules.imageTokenId !== undefined && id === opts.rules.imageTokenId) mod = MOD_IMAGE;
        if (opts.rules.imageSpecialIds?.has(id) || opts.rules.specialIds?.has(id)) mod = MOD_SPECIAL;
        if (mod === MOD_IMAGE) {
          st.run = st.lastMod === MOD_IMAGE ? st.run + 1 : 0;
          token = st.run;
        }
      }
      st.lastMod = mod;
      batch.push({ line: n, sample: s.sample, layer, pos, token, mod, experts, weights });
      if (batch.length >= CHUNK) await emit();
    }
    if (!col) throw new InputError(`${file}: empty (no header line)`);
    await emit();
  }
  for (const s of samples.values()) {
    if (s.side) for (const [l, st] of s.layers) {
      if (st.next !== s.side.modality.length) throw new InputError(`${s.where}: layer ${l} has ${st.next} tokens but the modality side file says ${s.side.modality.length}`);
    }
  }
  sink.endAll(inputs[inputs.length - 1]);
  return {
    router_scoring: opts.scoring ?? opts.model?.scoring ?? 'unknown',
    gates: sawWeights && !sawNoWeights ? 'from the weights column' : sawWeights ? 'weights column where given, else 1/K' : 'uniform 1/K (expert ids only; slot order kept)',
  };
}

interface Row {
  line: number;
  sample: number;
  layer: number;
  pos: number;
  token: number;
  mod: number;
  experts: number[];
  weights: number[] | null;
}

function header(cells: string[], where: string): Record<string, number> {
  const names = cells.map((c) => c.trim().toLowerCase());
  const col: Record<string, number> = {};
  for (const [key, aliases] of Object.entries(COLS)) {
    const i = names.findIndex((n) => aliases.includes(n));
    if (i >= 0 && !Object.values(col).includes(i)) col[key] = i;
  }
  if (col.layer === undefined || col.experts === undefined) {
    throw new InputError(`${where}: header ${JSON.stringify(cells.join(','))} needs a layer column and an expert_ids column`);
  }
  return col;
}

function parseLayer(cell: string, where: string): number {
  const m = /(\d+)(?!.*\d)/.exec(cell.trim()); // the last number: 12, ffn_moe_topk-12, blk.12.ffn_moe_topk
  if (!m || !/^\s*(\d+|[\w.]*?[-.]\d+(\.[\w_]+)?)\s*$/.test(cell)) throw new InputError(`${where}: layer ${JSON.stringify(cell)} is not a layer number or tensor name`);
  return Number(m[1]);
}

function parseList(cell: string, where: string, what: string, ints: boolean): number[] {
  const parts = cell.trim().replace(/^\[|\]$/g, '').split(/[\s,;|]+/).filter(Boolean);
  return parts.map((p) => {
    const v = Number(p);
    if (!Number.isFinite(v) || (ints && !Number.isInteger(v))) throw new InputError(`${where}: ${what} entry ${JSON.stringify(p)} is not ${ints ? 'an integer' : 'a number'}`);
    return v;
  });
}

/** One CSV line: commas separate, double quotes group, "" inside quotes is a quote. */
function splitCsv(line: string, where: string): string[] {
  const out: string[] = [];
  let cur = '';
  let q = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (q) {
      if (c === '"') {
        if (line[i + 1] === '"') {
          cur += '"';
          i++;
        } else q = false;
      } else cur += c;
    } else if (c === '"') q = true;
    else if (c === ',') {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  if (q) throw new InputError(`${where}: unterminated quote (truncated line?)`);
  out.push(cur);
  return out;
}
