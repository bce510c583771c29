import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BLOB, DuckDBInstance, INTEGER, LIST, VARCHAR, blobValue, listValue } from '@duckdb/node-api';
import { SamplesFile } from '../../src/trace/parquet/samples-file.js';
import { Conv, PType, ParquetFileWriter } from '../../src/trace/parquet/file-writer.js';
import type { SampleRow } from '../../src/trace/writer.js';
import { query, sqlPath } from '../capture/helpers.js';
import { readAll } from './readers.js';

/**
 * samples.parquet from moescope's own encoder (parquet/samples-file.ts) against the file DuckDB's
 * appender and COPY wrote before (the previous writer's code, kept here as the reference): same
 * DESCRIBE, same rows in the same order, NULL and empty where they were; and the same rows from
 * hyparquet and arrow-rs as the samples themselves give.
 */

/** The previous TraceWriter's samples path: appender into a table, COPY of the columns some sample filled. */
async function writeWithDuckDB(path: string, samples: SampleRow[]): Promise<void> {
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  try {
    await c.run('CREATE TABLE samples (sample INTEGER, text VARCHAR, images BLOB[], source VARCHAR, domain VARCHAR, tokens VARCHAR[], image_grids INTEGER[][])');
    const a = await c.createAppender('samples');
    const filled = new Set<string>();
    for (const s of samples) {
      a.appendInteger(s.sample);
      a.appendVarchar(s.text);
      a.appendList(listValue(s.images.map((b) => blobValue(b))), LIST(BLOB));
      a.appendVarchar(s.source);
      if (s.domain === undefined || s.domain === null) a.appendNull();
      else {
        a.appendVarchar(s.domain);
        filled.add('domain');
      }
      if (s.tokens) {
        a.appendList(listValue(s.tokens), LIST(VARCHAR));
        filled.add('tokens');
      } else a.appendNull();
      if (s.image_grids) {
        a.appendList(listValue(s.image_grids.map((g) => listValue(g))), LIST(LIST(INTEGER)));
        filled.add('image_grids');
      } else a.appendNull();
      a.endRow();
    }
    a.flushSync();
    a.closeSync();
    const cols = ['sample', 'text', 'images', 'source', ...['domain', 'tokens', 'image_grids'].filter((x) => filled.has(x))];
    await c.run(`COPY (SELECT ${cols.join(', ')} FROM samples) TO ${sqlPath(path)} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 4096)`);
  } finally {
    c.closeSync();
    db.closeSync();
  }
}

function writeWithMoescope(path: string, samples: SampleRow[]): void {
  const f = new SamplesFile(path);
  try {
    for (const s of samples) f.add(s);
    f.finish();
  } finally {
    f.close();
  }
}

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

const TEXTS = ['', ' ', 'it\'s a "red" circle', 'two\nlines\r\nand a tab\t', 'é à ß 日本語', '😀 above U+FFFF', 'NUL \0 inside', 'lone \ud800 surrogate', "''", '\\x00'];

function bytes(rnd: () => number, n: number): Uint8Array {
  return Uint8Array.from({ length: n }, () => Math.floor(rnd() * 256));
}

/** Samples whose optional columns are filled as `fill` says, with every kind of awkward value. */
function makeSamples(n: number, seed: number, fill: (i: number) => { domain: boolean; tokens: boolean; grids: boolean }): SampleRow[] {
  const rnd = lcg(seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rnd() * xs.length)];
  return Array.from({ length: n }, (_, i) => {
    const f = fill(i);
    const s: SampleRow = {
      sample: i,
      text: i === 7 ? 'long '.repeat(50_000) : pick(TEXTS) + (rnd() < 0.5 ? ` ${i}` : ''),
      images: Array.from({ length: Math.floor(rnd() * 3) }, () => bytes(rnd, pick([0, 1, 5, 300]))),
      source: rnd() < 0.1 ? '' : `file.jsonl:${i + 1}`,
    };
    if (f.domain) s.domain = rnd() < 0.2 ? null : pick(['arxiv', 'github', '', 'Web', 'web', 'é']);
    // (no NULL token, image or inner grid list: the previous writer threw on them, as SamplesFile does)
    if (f.tokens) s.tokens = rnd() < 0.2 ? null : Array.from({ length: pick([0, 1, 3, 40]) }, () => pick(['<bos>', 'the', '', ' ', 'ü', '😀', '\n']));
    const grid = () => (rnd() < 0.1 ? [] : [1, pick([1, 2, 24, -5]), pick([3, 2147483647, -2147483648, null as unknown as number])]);
    if (f.grids) s.image_grids = rnd() < 0.2 ? null : Array.from({ length: pick([0, 1, 2]) }, grid);
    return s;
  });
}

/** What the readers must give for the samples (blobs as byte arrays), in order. */
function expected(samples: SampleRow[], cols: string[]): Record<string, unknown>[] {
  return samples.map((s) => {
    const full: Record<string, unknown> = {
      sample: s.sample, text: s.text.replace(/\ud800/g, '\ufffd'), images: s.images.map((b) => Array.from(b)), source: s.source,
      domain: s.domain ?? null, tokens: s.tokens ?? null, image_grids: s.image_grids ?? null,
    };
    return Object.fromEntries(cols.map((c) => [c, full[c]]));
  });
}

async function compare(samples: SampleRow[], cols: string[], minRowGroups: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'moescope-samples-'));
  try {
    const old = join(dir, 'old.parquet'), now = join(dir, 'new.parquet');
    await writeWithDuckDB(old, samples);
    writeWithMoescope(now, samples);
    await readersAgree(now, samples, cols);
    const describe = async (p: string) => query(`SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM ${sqlPath(p)})`);
    assert.deepEqual(await describe(now), await describe(old));
    assert.deepEqual((await describe(now)).map((r) => r[0]), cols);
    // rows in order, native types compared (NULL matches only NULL; an empty list or string only itself)
    const rel = (p: string) => `(SELECT row_number() OVER () AS rn, * FROM read_parquet(${sqlPath(p)}))`;
    for (const [a, b] of [[now, old], [old, now]]) {
      const diff = await query(`SELECT * FROM ${rel(a)} EXCEPT ALL SELECT * FROM ${rel(b)} ORDER BY rn LIMIT 3`);
      assert.deepEqual(diff, [], `rows of ${a} not in ${b}`);
    }
    const [[n]] = await query(`SELECT count(*) FROM ${sqlPath(now)}`);
    assert.equal(Number(n), samples.length);
    const [[groups]] = await query(`SELECT count(DISTINCT row_group_id) FROM parquet_metadata(${sqlPath(now)})`);
    assert.ok(Number(groups) >= minRowGroups, `${groups} row groups, meant to be at least ${minRowGroups}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function readersAgree(path: string, samples: SampleRow[], cols: string[]): Promise<void> {
  const want = expected(samples, cols);
  for (const [reader, got] of Object.entries(await readAll(path))) assert.deepEqual(got, want, `${reader} reads other rows`);
}

const ALL = ['sample', 'text', 'images', 'source', 'domain', 'tokens', 'image_grids'];

test('samples.parquet: every optional column, awkward values, three row groups of 4096 samples', { timeout: 120_000 }, async () => {
  await compare(makeSamples(9000, 1, () => ({ domain: true, tokens: true, grids: true })), ALL, 3);
});

test('samples.parquet: domain only from the third row group, no tokens, grids only in the first (chunks left out of the footer)', { timeout: 120_000 }, async () => {
  const samples = makeSamples(9000, 2, (i) => ({ domain: i >= 8500, tokens: false, grids: i < 10 }));
  for (const s of samples.slice(8500)) s.domain ??= 'late';
  await compare(samples, ['sample', 'text', 'images', 'source', 'domain', 'image_grids'], 3);
});

test('samples.parquet: large samples make row groups by size, and pages over 1 MB', { timeout: 120_000 }, async () => {
  const rnd = lcg(3);
  const samples: SampleRow[] = Array.from({ length: 5 }, (_, i) => ({
    sample: i, text: `${i} é 😀 `.repeat(500_000), images: i < 2 ? [bytes(rnd, 1_500_000), new Uint8Array(0)] : [], source: 'big', tokens: [],
  }));
  await compare(samples, ['sample', 'text', 'images', 'source', 'tokens'], 2);
});

test('samples.parquet: no samples, and samples without the optional columns', async () => {
  await compare([], ['sample', 'text', 'images', 'source'], 0);
  await compare(makeSamples(5, 4, () => ({ domain: false, tokens: false, grids: false })), ['sample', 'text', 'images', 'source'], 1);
});

test('the list encoders: NULL elements and NULL inner lists (which no SampleRow has) read back in all three readers', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'moescope-samples-'));
  try {
    const path = join(dir, 'lists.parquet');
    type Row = { blobs: (Uint8Array | null)[] | null; words: (string | null)[] | null; grids: ((number | null)[] | null)[] | null };
    const rows: Row[] = [
      { blobs: [null, new Uint8Array([9])], words: [null, 'a', ''], grids: [null, [], [null, 2], [3]] },
      { blobs: [], words: null, grids: [] },
      { blobs: null, words: [], grids: null },
    ];
    const at = (r: Int32Array) => Array.from(r, (i) => rows[i]);
    const f = new ParquetFileWriter(path, [
      { name: 'blobs', list: true, type: PType.BYTE_ARRAY, conv: null, logical: null, write: (w, r) => w.byteArrayLists(at(r).map((x) => x.blobs)) },
      { name: 'words', list: true, type: PType.BYTE_ARRAY, conv: Conv.UTF8, logical: 'string', write: (w, r) => w.byteArrayLists(at(r).map((x) => x.words)) },
      { name: 'grids', list: true, listOfLists: true, type: PType.INT32, conv: Conv.INT_32, logical: 'int32', write: (w, r) => w.intListLists(at(r).map((x) => x.grids)) },
    ]);
    f.rowGroup(Int32Array.of(0, 1));
    f.rowGroup(Int32Array.of(2));
    f.finish();
    f.close();
    const want = rows.map((r) => ({ blobs: r.blobs && r.blobs.map((b) => b && Array.from(b)), words: r.words, grids: r.grids }));
    for (const [reader, got] of Object.entries(await readAll(path))) assert.deepEqual(got, want, `${reader} reads other rows`);
    const types = await query(`SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM ${sqlPath(path)})`);
    assert.deepEqual(types, [['blobs', 'BLOB[]'], ['words', 'VARCHAR[]'], ['grids', 'INTEGER[][]']]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
