import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { BIN, ROOT, serve, type Served } from './harness.js';
import { writeSyntheticTrace } from './synthetic-trace.js';
import { isLoopback } from '../../src/web/server/start-server.js';

/** GET with a raw request target (no URL normalisation), and an optional Host header. */
function rawGet(base: string, target: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; body: Buffer; type: string }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path: target, method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), type: String(res.headers['content-type'] ?? '') }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function getJson(base: string, path: string): Promise<{ status: number; json: any }> {
  const r = await fetch(base + path);
  return { status: r.status, json: await r.json() };
}

function cli(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface RawRow { sample: number; pos: number; modality: string; token: number; layer: number; expert: number[]; gate: number[] }

async function rawRows(dir: string): Promise<RawRow[]> {
  const inst = await DuckDBInstance.create(':memory:');
  const c = await inst.connect();
  try {
    const r = await c.runAndReadAll(`SELECT * FROM read_parquet('${join(dir, 'routing.parquet')}') ORDER BY sample, pos, layer`);
    return r.getRowObjectsJS() as unknown as RawRow[];
  } finally {
    c.closeSync();
    inst.closeSync();
  }
}

const tmp = mkdtempSync(join(tmpdir(), 'moescope-web-'));
const trace = join(tmp, 'trace');
let server: Served;
let rows: RawRow[];

before(async () => {
  await writeSyntheticTrace(trace, { samples: 16, layers: 4, experts: 8, topK: 2, imageSize: 32, patchSize: 8, seed: 3 });
  rows = await rawRows(trace);
  server = await serve([trace]);
});

after(async () => {
  await server?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

describe('moescope serve: API', () => {
  test('first line names a loopback URL and the page is served', async () => {
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    const r = await rawGet(server.url, '/');
    assert.equal(r.status, 200);
    assert.match(r.type, /text\/html/);
    assert.match(r.body.toString(), /<div id="app">/);
  });

  for (const mode of ['all', 'top1', 'gate'] as const) {
    test(`counts (${mode}) equal a count over the raw rows`, async () => {
      const { status, json } = await getJson(server.url, `api/counts?count=${mode}&modalities=text,image`);
      assert.equal(status, 200);
      assert.deepEqual(json.layers, [0, 1, 2, 3]);
      assert.deepEqual(json.modalities, ['text', 'image']);
      const E = 8, M = 2;
      const want = new Float64Array(4 * E * M);
      for (const r of rows) {
        const m = ['text', 'image'].indexOf(r.modality);
        if (m < 0) continue;
        const k = mode === 'top1' ? 1 : r.expert.length;
        const gsum = r.gate.reduce((a, b) => a + b, 0);
        for (let j = 0; j < k; j++) want[(r.layer * E + r.expert[j]) * M + m] += mode === 'gate' ? r.gate[j] / gsum : 1;
      }
      assert.equal(json.n.length, want.length);
      json.n.forEach((v: number, i: number) => assert.ok(Math.abs(v - want[i]) < 1e-6, `n[${i}] = ${v}, want ${want[i]}`));
      // Expert 7 receives nothing at layer 0 in the synthetic trace: its bar must be empty, not missing.
      assert.equal(json.n[(0 * E + 7) * M + 0] + json.n[(0 * E + 7) * M + 1], 0);
    });
  }

  test('a sample: its tokens, experts and gates at every layer, and words from its text', async () => {
    const { status, json } = await getJson(server.url, 'api/samples/2');
    assert.equal(status, 200);
    const mine = rows.filter((r) => r.sample === 2);
    const positions = [...new Set(mine.map((r) => r.pos))];
    assert.equal(json.tokens.length, positions.length);
    for (const t of json.tokens) {
      const at = mine.filter((r) => r.pos === t.pos).sort((a, b) => a.layer - b.layer);
      assert.deepEqual(t.experts, at.map((r) => r.expert));
      t.gates.forEach((g: number[], i: number) => g.forEach((x, j) => assert.ok(Math.abs(x - at[i].gate[j]) < 1e-6)));
    }
    const words = json.tokens.filter((t: any) => t.modality === 'text').map((t: any) => t.word);
    assert.equal(words.join(' '), json.text);
    assert.equal(json.tokens.filter((t: any) => t.modality === 'image' && t.image === 0).length, 16);
  });

  test('a sample image is the PNG stored in samples.parquet', async () => {
    const r = await rawGet(server.url, '/api/samples/0/images/0.png');
    assert.equal(r.status, 200);
    assert.equal(r.type, 'image/png');
    assert.deepEqual([...r.body.subarray(1, 4)].map((c) => String.fromCharCode(c)).join(''), 'PNG');
  });

  test('expert drill-down: totals, words by lift with counts, examples by descending gate', async () => {
    const { status, json } = await getJson(server.url, 'api/experts/3/5?modality=text&limit=5&offset=2');
    assert.equal(status, 200);
    const hits = rows.filter((r) => r.layer === 3 && r.expert.includes(5));
    for (const m of ['text', 'image', 'special']) assert.equal(json.totals[m] ?? 0, hits.filter((r) => r.modality === m).length, m);
    const text = hits.filter((r) => r.modality === 'text');
    assert.equal(json.total, text.length);
    const gateOf = (r: RawRow) => r.gate[r.expert.indexOf(5)];
    const byGate = [...text].sort((a, b) => gateOf(b) - gateOf(a) || a.sample - b.sample || a.pos - b.pos);
    assert.deepEqual(json.examples.map((x: any) => [x.sample, x.pos]), byGate.slice(2, 7).map((r) => [r.sample, r.pos]));
    for (const x of json.examples) assert.ok(Math.abs(x.gate - gateOf(byGate.find((r) => r.sample === x.sample && r.pos === x.pos)!)) < 1e-6);
    // Lift: (count here / text routed here) / (count at the layer / text routings at the layer), each choice counted once.
    const layerText = rows.filter((r) => r.layer === 3 && r.modality === 'text');
    const layerN = new Map<number, number>(), here = new Map<number, number>();
    for (const r of layerText) layerN.set(r.token, (layerN.get(r.token) ?? 0) + r.expert.length);
    for (const r of text) here.set(r.token, (here.get(r.token) ?? 0) + 1);
    const layerTotal = [...layerN.values()].reduce((a, b) => a + b, 0);
    const want = [...here.entries()].filter(([, n]) => n >= 3).map(([t, n]) => ({ t, n, lift: (n / text.length) / (layerN.get(t)! / layerTotal) }))
      .sort((a, b) => b.lift - a.lift || b.n - a.n || a.t - b.t);
    assert.deepEqual(json.topWords.map((w: any) => w.token), want.slice(0, 30).map((w) => w.t));
    json.topWords.forEach((w: any, i: number) => {
      assert.equal(w.n, want[i].n);
      assert.equal(w.layerN, layerN.get(w.token));
      assert.ok(Math.abs(w.lift - want[i].lift) < 1e-9);
    });
    // A word's contexts: only that token, with the words around it from the sample's text.
    const tok = want[0].t;
    const one = await getJson(server.url, `api/experts/3/5?modality=text&token=${tok}`);
    assert.equal(one.json.total, text.filter((r) => r.token === tok).length);
    for (const x of one.json.examples) {
      assert.equal(x.token, tok);
      const sampleText = (await getJson(server.url, `api/samples/${x.sample}`)).json;
      const words = sampleText.tokens.filter((t: any) => t.pos !== x.pos && Math.abs(t.pos - x.pos) <= 6 && t.modality !== 'image');
      assert.equal(x.context.after.split(' ')[0] || '', (words.find((t: any) => t.pos > x.pos)?.word ?? '').replace(/^$/, ''), 'first word after');
    }
  });

  test('flow: top-1 transitions between two layers, one E x E matrix per group', async () => {
    const { status, json } = await getJson(server.url, 'api/flow?a=1&b=3');
    assert.equal(status, 200);
    assert.deepEqual(json.groups, ['text', 'image']);
    const E = 8;
    const want = [new Array(E * E).fill(0), new Array(E * E).fill(0)];
    const at = new Map(rows.filter((r) => r.layer === 3).map((r) => [`${r.sample}/${r.pos}`, r.expert[0]]));
    for (const r of rows.filter((r) => r.layer === 1 && r.modality !== 'special')) {
      want[['text', 'image'].indexOf(r.modality)][r.expert[0] * E + at.get(`${r.sample}/${r.pos}`)!]++;
    }
    assert.deepEqual(json.n, want);
  });

  test('layer stats: router confidence, repeat rate and its chance, token specialisation, by plain loops over the rows', async () => {
    const { status, json } = await getJson(server.url, 'api/layer-stats?by=modality&groups=text,image');
    assert.equal(status, 200);
    const E = 8;
    for (const L of json.layers) {
      const mine = rows.filter((r) => r.layer === L.layer && (r.modality === 'text' || r.modality === 'image'));
      const g1 = mine.reduce((s, r) => s + r.gate[0], 0) / mine.length;
      const margin = mine.reduce((s, r) => s + r.gate[0] - r.gate[1], 0) / mine.length;
      assert.ok(Math.abs(L.router.gate_top1_mean - g1) < 1e-6, `layer ${L.layer} gate`);
      assert.ok(Math.abs(L.router.margin_mean - margin) < 1e-6, `layer ${L.layer} margin`);
      assert.equal(L.router.entropy_mean, null);
      // SPEC §3 near_uniform compares the top-1 router probability with 1/E: unknown (null) when every
      // token's top-k gates were renormalised to sum to 1 and there is no prob column
      const renormalised = mine.every((r) => Math.abs(r.gate.reduce((a: number, b: number) => a + b, 0) - 1) < 1e-3);
      assert.equal(L.router.near_uniform, renormalised ? null : g1 <= 1.1 / E);
      // repeat: consecutive analysed positions of one sample
      const key = new Map(mine.map((r) => [`${r.sample}/${r.pos}`, r.expert[0]]));
      let pairs = 0, same = 0;
      for (const r of mine) {
        const prev = key.get(`${r.sample}/${r.pos - 1}`);
        if (prev === undefined) continue;
        pairs++;
        if (prev === r.expert[0]) same++;
      }
      assert.ok(Math.abs(L.repeat_rate - same / pairs) < 1e-9, `layer ${L.layer} repeat ${L.repeat_rate} vs ${same / pairs}`);
      const f = new Array(E).fill(0);
      for (const r of mine) f[r.expert[0]]++;
      const chance = f.reduce((s, x) => s + (x / mine.length) ** 2, 0);
      assert.ok(Math.abs(L.repeat_rate_chance - chance) < 1e-9);
      // token specialisation over (modality, token id) with >= 8 routings (an image token's id is its patch index; docs/metrics.md)
      const byTok = new Map<string, number[]>();
      for (const r of mine) {
        const k = `${r.modality}/${r.token}`;
        const c = byTok.get(k) ?? new Array(E).fill(0);
        c[r.expert[0]]++;
        byTok.set(k, c);
      }
      let mx = 0, tot = 0, ids = 0;
      for (const c of byTok.values()) {
        const n = c.reduce((a, b) => a + b, 0);
        if (n < 8) continue;
        ids++;
        mx += Math.max(...c);
        tot += n;
      }
      assert.equal(L.token_specialisation_ids, ids);
      if (ids) assert.ok(Math.abs(L.token_specialisation - mx / tot) < 1e-9);
      if (ids) assert.ok(L.token_specialisation_chance > 0 && L.token_specialisation_chance <= 1);
    }
  });

  test('co-activation of a layer equals pair counts over the rows', async () => {
    const { status, json } = await getJson(server.url, 'api/coactivation/2?by=modality&groups=text,image');
    assert.equal(status, 200);
    const E = 8;
    const n = new Array(E * E).fill(0);
    for (const r of rows.filter((r) => r.layer === 2 && r.modality !== 'special')) for (const i of r.expert) for (const j of r.expert) n[i * E + j]++;
    for (let i = 0; i < E; i++) {
      assert.equal(json.chosen[i], n[i * E + i]);
      for (let j = 0; j < E; j++) {
        const want = n[i * E + i] ? n[i * E + j] / n[i * E + i] : null;
        if (want === null) assert.equal(json.matrix[i * E + j], null);
        else assert.ok(Math.abs(json.matrix[i * E + j] - want) <= 1e-5 * want + 1e-12, `C[${i}][${j}]`); // six significant digits
      }
    }
  });

  test('metrics by layer match the analysis of the same counts', async () => {
    const { status, json } = await getJson(server.url, 'api/metrics');
    assert.equal(status, 200);
    assert.deepEqual(json.layers.map((m: any) => m.layer), [0, 1, 2, 3]);
    assert.deepEqual(json.layers[0].load.dead_ids, [7]);
    for (const m of json.layers) assert.ok(m.S >= 0 && m.S <= 1 && m.jsd >= 0);
  });

  test('missing layers, samples, experts and bad parameters are 4xx with a reason', async () => {
    const cases: [string, number, RegExp][] = [
      ['api/experts/9/0', 404, /layer 9 does not exist/],
      ['api/experts/1/8', 404, /expert 8 does not exist/],
      ['api/flow?a=0&b=77', 404, /layer 77/],
      ['api/samples/12345', 404, /sample 12345 does not exist/],
      ['api/samples/abc', 400, /sample must be an integer/],
      ['api/samples/0/images/3.png', 404, /has no image 3/],
      ['api/counts?count=most', 400, /count must be one of/],
      ['api/counts?modalities=video', 404, /modality "video" is not in this trace/],
      ['api/counts?by=nosuchcolumn', 404, /cannot group by "nosuchcolumn"/],
      ['api/counts?by=x%3By', 400, /by must be a column name/],
      ['api/coactivation/99', 404, /layer 99 does not exist/],
      ['api/experts/1/2?modality=video', 404, /modality "video" is not in this trace/],
      ['api/samples?trace=b', 404, /no trace "b"/],
      ['api/samples?limit=100000', 400, /limit/],
      ['api/compare', 404, /--compare/],
      ['api/flow?a=0&b=1&groups=', 400, /groups/],
      ['api/nothing', 404, /no such API endpoint/],
    ];
    for (const [path, code, reason] of cases) {
      const { status, json } = await getJson(server.url, path);
      assert.equal(status, code, path);
      assert.match(json.error, reason, path);
    }
  });

  test('path traversal, encoded or not, and absolute paths get 404; the server keeps serving', async () => {
    const targets = [
      '/../../../../etc/passwd', '/%2e%2e/%2e%2e/etc/passwd', '/%2E%2E%2F%2E%2E%2Fpackage.json', '/assets/..%2f..%2f..%2fpackage.json',
      '/assets/%252e%252e/%252e%252e/package.json', '//etc/passwd', '/%2fetc%2fpasswd', '/etc/passwd', '/..%5c..%5cpackage.json',
      '/api/model/..%2f..%2fpackage.json', '/api/model/%2e%2e', `/${ROOT}package.json`, '/./index.html', '/C:/Windows/win.ini',
      'http://127.0.0.1/../package.json',
    ];
    for (const t of targets) {
      const r = await rawGet(server.url, t);
      assert.equal(r.status, 404, `${t} -> ${r.status}`);
      assert.doesNotMatch(r.body.toString(), /root:|"name": "moescope"/, t);
    }
    // A raw backslash is rejected by Node's HTTP parser itself (400) before any routing.
    assert.ok([400, 404].includes((await rawGet(server.url, '/..\\..\\package.json')).status));
    assert.equal((await rawGet(server.url, '/api/info')).status, 200);
  });

  test('read-only, and a foreign Host header is refused (DNS rebinding)', async () => {
    assert.equal((await rawGet(server.url, '/api/info', {}, 'POST')).status, 405);
    assert.equal((await rawGet(server.url, '/api/info', {}, 'DELETE')).status, 405);
    assert.equal((await rawGet(server.url, '/api/info', { Host: 'evil.example:80' })).status, 403);
    assert.equal((await rawGet(server.url, '/api/info', { Host: `localhost:${new URL(server.url).port}` })).status, 200);
  });
});

/** Resident memory of a process in MiB (Linux /proc). */
function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

describe('moescope serve A --compare B C', () => {
  test('saturation of each trace against A, per layer, equals a loop over the rows; models not recorded: a warning', async () => {
    const b = join(tmp, 'same'), c = join(tmp, 'other');
    await writeSyntheticTrace(b, { samples: 16, layers: 4, experts: 8, topK: 2, imageSize: 32, patchSize: 8, seed: 3 });
    await writeSyntheticTrace(c, { samples: 16, layers: 4, experts: 8, topK: 2, imageSize: 32, patchSize: 8, seed: 4 });
    const other = await rawRows(c);
    const s = await serve([trace, '--compare', b, c]);
    try {
      const { status, json } = await getJson(s.url, 'api/compare?by=modality&groups=text,image');
      assert.equal(status, 200);
      assert.deepEqual(json.folders, ['trace', 'same', 'other']);
      assert.equal(json.models, 'unknown');
      assert.match(json.warning, /records no model/);
      const a = new Map(rows.map((r) => [`${r.sample}/${r.pos}/${r.layer}`, r.expert]));
      for (const L of json.layers) {
        assert.equal(L.saturation[0], null);
        assert.equal(L.saturation[1], 1); // the same routing
        let hit = 0, all = 0;
        for (const r of other.filter((x) => x.layer === L.layer)) {
          const ea = a.get(`${r.sample}/${r.pos}/${r.layer}`)!;
          all += r.expert.length;
          hit += r.expert.filter((e) => ea.includes(e)).length;
        }
        assert.ok(Math.abs(L.saturation[2] - hit / all) < 1e-12, `layer ${L.layer}: ${L.saturation[2]} vs ${hit / all}`);
        assert.equal(L.S.length, 3);
        assert.equal(L.S[0], L.S[1]);
      }
      assert.equal(json.counts.length, 3);
    } finally {
      await s.stop();
    }
  });
});

describe('moescope serve: under load', () => {
  test('7,500 requests at concurrency 50: every answer right, memory levels off', async () => {
    // Mostly what a page asks most (info, counts, metrics, the UI, images), some row queries, some refusals.
    const targets = ['/api/info', '/api/counts?count=top1', '/', '/api/metrics', '/api/samples/0/images/0.png', '/api/layer-stats', '/api/coactivation/1',
      '/%2e%2e/%2e%2e/etc/passwd', '/api/info', '/api/counts', '/api/nothing', '/', '/api/samples/3', '/api/experts/2/5?modality=text&limit=5', '/api/samples/99999', '/api/flow?a=0&b=1'];
    const expect = (t: string) => (t.includes('%2e') || t.includes('99999') || t.includes('nothing') ? 404 : 200);
    const pid = server.proc.pid!;
    let sent = 0, bad = 0;
    const marks: number[] = [];
    const worker = async () => {
      while (sent < 7500) {
        const i = sent++;
        const t = targets[i % targets.length];
        const r = await rawGet(server.url, t);
        if (r.status !== expect(t)) bad++;
        if (i === 2500 || i === 5000 || i === 7499) marks.push(rssMiB(pid));
      }
    };
    await Promise.all(Array.from({ length: 50 }, worker));
    assert.equal(bad, 0);
    assert.equal(marks.length, 3);
    // Caches are bounded: from the middle to the end memory grows far less than it would with a leak per request.
    // DuckDB's and V8's caches fill over the first ~3,000 requests (more slowly on a loaded machine), so
    // the comparison starts at 5,000.
    assert.ok(marks[2] - marks[1] < 40, `RSS ${marks.map((m) => m.toFixed(0)).join(' -> ')} MiB`);
    assert.equal((await rawGet(server.url, '/api/info')).status, 200);
  });
});

describe('moescope serve: refusals and bad traces', () => {
  test('loopback addresses are the 127/8 block, ::1 and localhost; nothing else', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', 'LOCALHOST', '::1', '[::1]']) assert.equal(isLoopback(h), true, h);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', '128.0.0.1', '127.0.0.1.evil.com', 'localhost.evil.com', '::2', '']) assert.equal(isLoopback(h), false, h);
  });

  test('a non-loopback --host is refused without --allow-remote', () => {
    for (const host of ['0.0.0.0', '::', '192.168.1.10']) {
      const r = cli(['serve', trace, '--host', host]);
      assert.equal(r.code, 2, `${host}: ${r.stderr}`);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /^moescope: error: --host .*: refusing to serve beyond this machine [^\n]*--allow-remote[^\n]*\n$/);
    }
  });

  test('--allow-remote binds the address it is given', async () => {
    const s = await serve([trace, '--host', '0.0.0.0', '--allow-remote']);
    try {
      assert.match(s.url, /^http:\/\/0\.0\.0\.0:\d+\/$/);
      const r = await rawGet(`http://127.0.0.1:${new URL(s.url).port}/`, '/api/info', { Host: 'example.org' });
      assert.equal(r.status, 200);
    } finally {
      await s.stop();
    }
  });

  test('without --port: the default port 8642, or the next free one when it is taken', async () => {
    const a = await serve([trace], 60_000, true);
    try {
      const pa = Number(new URL(a.url).port);
      assert.ok(pa >= 8642 && pa < 8662, `first server on ${pa}`);
      const b = await serve([trace], 60_000, true);
      try {
        const pb = Number(new URL(b.url).port);
        assert.ok(pb > pa && pb < 8662, `second server on ${pb}, first on ${pa}`);
        assert.equal((await rawGet(b.url, '/api/info')).status, 200);
      } finally {
        await b.stop();
      }
    } finally {
      await a.stop();
    }
  });

  test('a port in use and a bad port are usage errors', async () => {
    const blocker = createServer();
    await new Promise<void>((res) => blocker.listen(0, '127.0.0.1', () => res()));
    const port = (blocker.address() as { port: number }).port;
    try {
      const r = cli(['serve', trace, '--port', String(port)]);
      assert.equal(r.code, 2);
      assert.match(r.stderr, new RegExp(`^moescope: error: --port ${port}: already in use\\n$`));
    } finally {
      blocker.close();
    }
    const noCol = cli(['serve', trace, '--by', 'nope']);
    assert.equal(noCol.code, 2);
    assert.match(noCol.stderr, /^moescope: error: --by nope: cannot group by it \(no such column[^\n]*\n$/);
    const bad = cli(['serve', trace, '--port', 'eighty']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^moescope: error: --port: must be an integer/);
  });

  test('folders that are not traces, and corrupt traces, fail with one line and exit 2', () => {
    const empty = join(tmp, 'empty');
    mkdirSync(empty, { recursive: true });
    const truncated = join(tmp, 'truncated');
    mkdirSync(truncated, { recursive: true });
    copyFileSync(join(trace, 'meta.json'), join(truncated, 'meta.json'));
    const parquet = readFileSync(join(trace, 'routing.parquet'));
    writeFileSync(join(truncated, 'routing.parquet'), parquet.subarray(0, Math.floor(parquet.length / 2)));
    const badMeta = join(tmp, 'bad-meta');
    mkdirSync(badMeta, { recursive: true });
    copyFileSync(join(trace, 'routing.parquet'), join(badMeta, 'routing.parquet'));
    writeFileSync(join(badMeta, 'meta.json'), '{"num_layers": 4,');
    const badSamples = join(tmp, 'bad-samples');
    mkdirSync(badSamples, { recursive: true });
    copyFileSync(join(trace, 'routing.parquet'), join(badSamples, 'routing.parquet'));
    copyFileSync(join(trace, 'meta.json'), join(badSamples, 'meta.json'));
    writeFileSync(join(badSamples, 'samples.parquet'), 'not parquet at all');
    const file = join(trace, 'meta.json');
    const cases: [string, RegExp][] = [
      [join(tmp, 'nope'), /no such trace folder/],
      [empty, /not a moescope trace/],
      [file, /not a folder/],
      [truncated, /routing\.parquet: /],
      [badMeta, /meta\.json: not valid JSON/],
      [badSamples, /samples\.parquet: cannot read as Parquet/],
    ];
    for (const [dir, reason] of cases) {
      const r = cli(['serve', dir]);
      assert.equal(r.code, 2, `${dir}: ${r.stderr}`);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /^moescope: error: [^\n]+\n$/);
      assert.match(r.stderr, reason, dir);
    }
    assert.ok(statSync(join(trace, 'routing.parquet')).size > 0);
  });
});
