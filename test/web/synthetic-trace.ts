import { mkdirSync, rmSync, writeFileSync, existsSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { DuckDBInstance, blobValue } from '@duckdb/node-api';
import { encode } from 'fast-png';

/**
 * A trace in the SPEC §2 layout, made with DuckDB SQL (no model needed), for the dashboard's tests
 * and benchmark. Routing is hashed from (seed, sample, pos, layer) with a modality bias that grows
 * with depth (image -> experts 0..E/2-1, text -> E/2..E-1), and expert E-1 receives nothing at
 * layer 0, so the figure has both specialised and empty bars.
 */
export interface SyntheticTraceOptions {
  samples: number;
  layers: number;
  experts: number;
  topK: number; // 1..8
  imageSize: number; // px, square
  patchSize: number;
  seed?: number;
  /** No image parts: text and special tokens only (a text-only MoE such as OLMoE or Qwen3-MoE). */
  textOnly?: boolean;
  /**
   * Data domains (samples.parquet `domain`, sample i in domains[i % D]): domain d's text goes to
   * experts of block d (E/D experts, by token id) with the depth-growing bias, so `--by domain` has
   * planted structure and a token id mostly keeps one expert.
   */
  domains?: string[];
  /** samples.parquet `tokens` (SPEC §2): each position's token string. */
  tokenStrings?: boolean;
  /** A layer whose mean top-1 gate is 1.05/E (a near-uniform router; k > 2 only), planted as the most specialised. */
  nearUniformLayer?: number;
  /** Image parts without a stored PNG (as an importer writes samples it has no pixels for). */
  noStoredImages?: boolean;
}

export const SYNTH_WORDS = ['a', 'small', 'large', 'red', 'green', 'blue', 'yellow', 'circle', 'square', 'triangle', 'left', 'of', 'right', 'above', 'below', 'the', 'and', 'two'];

/** A few distinct RGB images: a coloured square on a grey ground, at different places. */
function drawImage(k: number, size: number): Uint8Array {
  const colours = [[220, 40, 40], [40, 160, 60], [40, 80, 220], [230, 200, 30]];
  const [r, g, b] = colours[k % colours.length];
  const data = new Uint8Array(size * size * 3).fill(200);
  const side = Math.max(2, Math.floor(size / 3));
  const x0 = ((k * 7) % (size - side)), y0 = ((k * 5) % (size - side));
  for (let y = y0; y < y0 + side; y++) for (let x = x0; x < x0 + side; x++) {
    const i = (y * size + x) * 3;
    data[i] = r; data[i + 1] = g; data[i + 2] = b;
  }
  return encode({ width: size, height: size, data, channels: 3, depth: 8 });
}

export async function writeSyntheticTrace(dir: string, o: SyntheticTraceOptions): Promise<void> {
  const seed = o.seed ?? 1;
  const G = (o.imageSize / o.patchSize) ** 2;
  const E = o.experts, L = o.layers, half = Math.floor(E / 2);
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const inst = await DuckDBInstance.create(':memory:');
  const c = await inst.connect();
  try {
    const words = `[${SYNTH_WORDS.map((w) => `'${w}'`).join(', ')}]`;
    const W = SYNTH_WORDS.length;
    // Every fourth sample is text-only; captions have 4..8 words.
    const D = o.domains?.length ?? 0;
    await c.run(`CREATE TEMP TABLE s AS SELECT range::INTEGER AS sample, ${o.textOnly ? 'false' : '(range % 4 <> 3)'} AS has_img, (4 + range % 5)::INTEGER AS nw,
      ${D ? `(range % ${D})::INTEGER` : '0'} AS d FROM range(${o.samples})`);
    await c.run(`CREATE TEMP TABLE txt AS SELECT sample, has_img, nw, j, (hash(${seed}, sample, j, 'w') % ${W})::INTEGER AS w
      FROM (SELECT sample, has_img, nw, unnest(range(nw))::INTEGER AS j FROM s)`);
    await c.run(`CREATE TEMP TABLE seqs AS
      SELECT sample, 0 AS pos, 'special' AS modality, 1 AS token FROM s
      UNION ALL SELECT sample, 1 + i, 'image', i FROM (SELECT sample, unnest(range(${G}))::INTEGER AS i FROM s WHERE has_img)
      UNION ALL SELECT sample, 1 + CASE WHEN has_img THEN ${G} ELSE 0 END + j, 'text', 4 + w FROM txt
      UNION ALL SELECT sample, 1 + CASE WHEN has_img THEN ${G} ELSE 0 END + nw, 'special', 2 FROM s`);
    await c.run(`CREATE TEMP TABLE seqd AS SELECT seqs.*, s.d FROM seqs JOIN s USING (sample)`);
    // The near-uniform layer (when asked) is planted as the most specialised: a headline must still not name it.
    const bias0 = L > 1 ? `(20 + 70 * layer / ${L - 1})` : '50';
    const bias = o.nearUniformLayer !== undefined ? `(CASE WHEN layer = ${o.nearUniformLayer} THEN 100 ELSE ${bias0} END)` : bias0;
    const block = D ? Math.max(1, Math.floor(E / D)) : 0;
    const e1 = D
      ? `CASE WHEN h1 % 100 < ${bias} AND modality = 'text' THEN d * ${block} + hash(${seed}, token, layer) % ${block} ELSE h2 % ${E} END`
      : `CASE WHEN h1 % 100 < ${bias} AND modality <> 'special'
        THEN (CASE modality WHEN 'image' THEN h2 % ${half} ELSE ${half} + h2 % ${E - half} END) ELSE h2 % ${E} END`;
    await c.run(`CREATE TEMP TABLE r AS SELECT sample, pos, modality, token, layer, h3,
        CASE WHEN layer = 0 AND e = ${E - 1} THEN 0 ELSE e END AS e1
      FROM (SELECT *, ${e1} AS e FROM (
        SELECT sample::INTEGER AS sample, pos::INTEGER AS pos, modality, token::INTEGER AS token, layer::SMALLINT AS layer,
          d, hash(${seed}, sample, pos, layer, 'a') AS h1, hash(${seed}, sample, pos, layer, 'b') AS h2, hash(${seed}, sample, pos, layer, 'c') AS h3
        FROM seqd, (SELECT range AS layer FROM range(${L}))))`);
    // Second choice: another expert (never E-1 at layer 0 either), gates descending.
    const e2 = `CASE WHEN layer = 0 THEN (e1 + 1 + h3 % ${E - 2}) % ${E - 1} ELSE (e1 + 1 + h3 % ${E - 1}) % ${E} END`;
    // k > 2: the other choices step from e1 by a stride that keeps all k distinct; gates are softmax probabilities (not renormalised), descending.
    const stride = `(1 + h3 % ${Math.max(1, Math.floor((E - 1) / Math.max(1, o.topK - 1)))})`;
    const g1 = o.nearUniformLayer !== undefined ? `CASE WHEN layer = ${o.nearUniformLayer} THEN ${1.05 / E} ELSE ${Math.min(0.9, 8 / E + 0.2)} END` : '0.5';
    const cols = o.topK === 1
      ? `[e1]::SMALLINT[] AS expert, [1.0]::FLOAT[] AS gate`
      : o.topK === 2
        ? `[e1, ${e2}]::SMALLINT[] AS expert, [0.5 + (h3 % 500) / 1000.0, 0.5 - (h3 % 500) / 1000.0]::FLOAT[] AS gate`
        : `list_transform(range(${o.topK}), j -> ((e1 + j * ${stride}) % ${E}))::SMALLINT[] AS expert,
           list_transform(range(${o.topK}), j -> ${g1} * pow(0.97, j))::FLOAT[] AS gate`;
    await c.run(`COPY (SELECT sample, pos, modality, token, layer, ${cols} FROM r ORDER BY sample, layer, pos)
      TO '${join(tmp, 'routing.parquet')}' (FORMAT parquet)`);
    await c.run(`CREATE TEMP TABLE imgs(k INTEGER, png BLOB)`);
    for (let k = 0; k < 8; k++) await c.run(`INSERT INTO imgs VALUES ($1, $2)`, [k, blobValue(drawImage(k, o.imageSize))]);
    const domains = D ? `[${o.domains!.map((d) => `'${d}'`).join(', ')}]` : '';
    const tokStrings = o.tokenStrings
      ? `, (SELECT list(CASE WHEN q.modality = 'image' THEN NULL WHEN q.token = 1 THEN '<bos>' WHEN q.token = 2 THEN '<eos>' ELSE ${words}[q.token - 4 + 1] END ORDER BY q.pos) FROM seqs q WHERE q.sample = s.sample) AS tokens`
      : '';
    await c.run(`COPY (
        SELECT s.sample, t.text, CASE WHEN s.has_img AND ${o.noStoredImages ? 'false' : 'true'} THEN [i.png] ELSE []::BLOB[] END AS images, 'synthetic:seed=${seed}:index=' || s.sample AS source
          ${D ? `, ${domains}[s.d + 1] AS domain` : ''}${tokStrings}
        FROM s JOIN (SELECT sample, string_agg(${words}[w + 1], ' ' ORDER BY j) AS text FROM txt GROUP BY sample) t USING (sample)
        JOIN imgs i ON i.k = s.sample % 8 ORDER BY s.sample)
      TO '${join(tmp, 'samples.parquet')}' (FORMAT parquet)`);
    const tokens = (await c.runAndReadAll(`SELECT modality, count(*)::INTEGER AS n FROM seqs GROUP BY modality ORDER BY modality`)).getRowObjectsJS();
    const meta = {
      moescope_version: '0.1.0', num_layers: L, num_experts: E, top_k: o.topK, router_scoring: 'softmax',
      model: null,
      data: `synthetic:samples=${o.samples}:seed=${seed}`,
      tokens: Object.fromEntries(tokens.map((t) => [t.modality as string, t.n as number])),
    };
    writeFileSync(join(tmp, 'meta.json'), JSON.stringify(meta, null, 2) + '\n');
  } finally {
    c.closeSync();
    inst.closeSync();
  }
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
}

/** The trace at `dir`, made once (cached between runs when `reuse`). */
export async function syntheticTrace(dir: string, o: SyntheticTraceOptions, reuse = true): Promise<string> {
  if (!(reuse && existsSync(join(dir, 'meta.json')))) await writeSyntheticTrace(dir, o);
  return dir;
}
