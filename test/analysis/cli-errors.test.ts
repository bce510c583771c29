import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTrace, type TokenGroup } from './make-trace.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'moescope-badtrace-'));

function moescope(args: string[]) {
  const r = spawnSync(process.execPath, [join(root, 'bin/moescope'), ...args], { cwd: tmp, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The CLI, asynchronously, so that independent cases run side by side. */
function moescopeAsync(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolveRun) => {
    const p = spawn(process.execPath, [join(root, 'bin/moescope'), ...args], { cwd: tmp });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (code) => resolveRun({ code, stdout, stderr }));
  });
}

/** Run `fn` over items, at most `n` at a time. */
async function pool<T>(items: T[], n: number, fn: (x: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < items.length) await fn(items[next++]);
  }));
}

const GOOD: TokenGroup[] = [
  { layer: 0, modality: 'text', expert: [0], rep: 3 },
  { layer: 0, modality: 'image', expert: [1], rep: 2 },
  { layer: 1, modality: 'text', expert: [2], rep: 3 },
];

/** Each bad trace, and what the one-line error must say. */
const CASES: { name: string; make: (dir: string) => Promise<unknown>; args?: string[]; error: RegExp }[] = [
  { name: 'no-routing', make: (d) => makeTrace(d, GOOD, { noRouting: true }), error: /no-routing: not a trace folder \(no routing\.parquet or routing\/\)/ },
  { name: 'no-meta', make: (d) => makeTrace(d, GOOD, { meta: null }), error: /no-meta: not a trace folder \(no meta\.json\)/ },
  { name: 'missing-column', make: (d) => makeTrace(d, GOOD, { types: { expert: null } }), error: /routing\.parquet: missing column expert/ },
  { name: 'mistyped-column', make: (d) => makeTrace(d, GOOD, { types: { expert: 'VARCHAR' } }), error: /routing\.parquet: column expert has type VARCHAR, expected SMALLINT\[\]/ },
  { name: 'mistyped-layer', make: (d) => makeTrace(d, GOOD, { types: { layer: 'DOUBLE' } }), error: /routing\.parquet: column layer has type DOUBLE/ },
  { name: 'expert-out-of-range', make: (d) => makeTrace(d, [...GOOD, { layer: 1, modality: 'image', expert: [8], rep: 1 }]), error: /routing\.parquet: expert id 8 in layer 1 is outside 0\.\.7/ },
  { name: 'negative-expert', make: (d) => makeTrace(d, [...GOOD, { layer: 0, modality: 'text', expert: [-1], rep: 1 }]), error: /expert id -1 in layer 0 is outside 0\.\.7/ },
  { name: 'layer-out-of-range', make: (d) => makeTrace(d, GOOD, { numLayers: 1 }), error: /routing\.parquet: layer 1 is outside 0\.\.0 \(num_layers 1 in meta\.json\)/ },
  { name: 'empty', make: (d) => makeTrace(d, []), error: /routing\.parquet: empty trace/ },
  { name: 'special-only', make: (d) => makeTrace(d, [{ layer: 0, modality: 'special', expert: [0], rep: 2 }, { layer: 0, modality: 'text', expert: [1], rep: 0 }]), error: /routing\.parquet: no tokens to group by modality \(the trace has special; choose with --groups\)/ },
  { name: 'no-text-image-in-layer', make: (d) => makeTrace(d, [{ layer: 0, modality: 'special', expert: [0], rep: 2 }, { layer: 1, modality: 'text', expert: [1], rep: 1 }, { layer: 1, modality: 'image', expert: [1], rep: 1 }]), args: ['--layers', '0'], error: /no text or image tokens in layer 0/ },
  { name: 'gate-short', make: (d) => makeTrace(d, [{ layer: 0, modality: 'text', expert: [0, 1], gate: [1], rep: 2 }]), args: ['--count', 'gate'], error: /--count gate: the trace has no router gates/ },
  { name: 'layer-missing', make: (d) => makeTrace(d, GOOD), args: ['--layers', '0,5'], error: /routing\.parquet: layer 5 is not in the trace \(it has layers 0, 1\)/ },
  { name: 'modality-missing', make: (d) => makeTrace(d, GOOD), args: ['--modalities', 'text,video'], error: /modality "video" is not in the trace/ },
  {
    name: 'not-parquet',
    make: async (d) => {
      await makeTrace(d, GOOD);
      writeFileSync(join(d, 'routing.parquet'), 'this is not parquet\n');
    },
    error: /routing\.parquet: cannot read as Parquet/,
  },
  {
    name: 'bad-meta',
    make: async (d) => {
      await makeTrace(d, GOOD);
      writeFileSync(join(d, 'meta.json'), '{"num_layers": 2,');
    },
    error: /meta\.json: not valid JSON/,
  },
];

test('bad traces: analyze and plot print one line naming the file and problem, exit 2, and write nothing', async () => {
  for (const c of CASES) await c.make(join(tmp, c.name));
  await pool(CASES, 3, async (c) => {
    const dir = join(tmp, c.name);
    const a = await moescopeAsync(['analyze', dir, ...(c.args ?? [])]);
    assert.equal(a.code, 2, `${c.name}: ${a.stderr}`);
    assert.equal(a.stdout, '', c.name);
    const lines = a.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `${c.name}: ${a.stderr}`);
    assert.match(lines[0], /^moescope: error: /);
    assert.match(lines[0], c.error, c.name);

    // plot: alternately over a previous good figure (left as it was) and to a fresh name (not created)
    const existing = CASES.indexOf(c) % 2 === 0;
    const out = join(tmp, `${c.name}.${existing ? 'svg' : 'png'}`);
    if (existing) writeFileSync(out, 'OLD');
    const p = await moescopeAsync(['plot', dir, '--out', out, ...(c.args ?? [])]);
    assert.equal(p.code, 2, `${c.name} plot: ${p.stderr}`);
    assert.match(p.stderr.trim(), c.error);
    if (existing) assert.equal(readFileSync(out, 'utf8'), 'OLD', `${c.name}: plot overwrote its output`);
    else assert.equal(existsSync(out), false, `${c.name}: partial output`);
  });
  assert.deepEqual(readdirSync(tmp).filter((f) => f.includes('.tmp-')), [], 'no temporary files left');
});

test('bad options: unknown figure format, bad --count, bad --layers', async () => {
  const dir = await makeTrace(join(tmp, 'good'), GOOD);
  mkdirSync(join(tmp, 'o'), { recursive: true });
  for (const [args, re] of [
    [['plot', dir, '--out', join(tmp, 'o', 'f.jpg')], /unknown figure format/],
    [['analyze', dir, '--count', 'most'], /--count/],
    [['analyze', dir, '--layers', 'x'], /--layers/],
    [['plot', dir, '--out', join(tmp, 'o', 'f.svg'), '--sort', 'size'], /--sort/],
  ] as [string[], RegExp][]) {
    const r = moescope(args);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split('\n').length, 1);
  }
  assert.deepEqual(readdirSync(join(tmp, 'o')), []);
});

test('a good trace: analyze prints a table, --json parses, plot writes each format', async () => {
  const dir = await makeTrace(join(tmp, 'good2'), GOOD);
  const a = moescope(['analyze', dir]);
  assert.equal(a.code, 0, a.stderr);
  assert.match(a.stdout, /layer\s+text tok\s+image tok\s+S\s+S0\s+I\(G;E\)/);
  const j = JSON.parse(moescope(['analyze', dir, '--json', '--count', 'top1']).stdout);
  assert.equal(j.count, 'top1');
  assert.deepEqual(j.layers.map((l: { layer: number }) => l.layer), [0, 1]);
  assert.equal(j.layers[0].S, 1); // expert 0 text only, expert 1 image only
  for (const ext of ['svg', 'png', 'vl.json']) {
    const out = join(tmp, `good.${ext}`);
    const r = moescope(['plot', dir, '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(readFileSync(out).length > 500, ext);
  }
});
