import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import type { BenchRow } from './report.js';
import { launchBrowser, serve } from '../test/web/harness.js';
import { syntheticTrace } from '../test/web/synthetic-trace.js';
import { openDuck } from '../src/analysis/db.js';
import { openTrace } from '../src/analysis/trace.js';
import { indexTrace } from '../src/trace/store-aggregates.js';

/** The synthetic traces are written by hand (no aggregates): store them once, as capture and import would have. */
async function withAggregates(dir: string): Promise<void> {
  if (existsSync(join(dir, 'agg-counts.parquet'))) return;
  const { conn, close } = await openDuck({ memoryLimit: '2GB' });
  try {
    await indexTrace(conn, dir, await openTrace(conn, dir));
  } finally {
    close();
  }
}

/**
 * The dashboard on a ~1M-token trace (24 layers, so ~24M routing rows), in Chromium:
 * - time to the first figure: navigation start -> the figure's SVG is in the page (server already up);
 * - time to switch layers: slider moved -> the new panels drawn (median of several switches).
 * Peers, measured in the same run on the same trace: a bare DuckDB GROUP BY (the scan any figure
 * needs) and a bare one-layer GROUP BY (what a server round trip per switch would cost at least).
 */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TRACE = join(ROOT, 'bench-out', 'web-trace-1M');
const SAMPLES = 50_000; // ~20 tokens per sample (3 in 4 with a 16-patch image) -> ~1M tokens
/** A model like those researchers study: 128 experts, 48 layers, top-8, text only, with data domains. */
const TRACE_128 = join(ROOT, 'bench-out', 'web-trace-128x48-top8');
const OPTS_128 = { samples: 4000, layers: 48, experts: 128, topK: 8, imageSize: 32, patchSize: 8, seed: 9, textOnly: true, domains: ['arxiv', 'github', 'wiki', 'books'], tokenStrings: true };

async function bareQuery(sql: string): Promise<number> {
  const inst = await DuckDBInstance.create(':memory:', { threads: '2' });
  const c = await inst.connect();
  try {
    const t0 = performance.now();
    await c.runAndReadAll(sql);
    return performance.now() - t0;
  } finally {
    c.closeSync();
    inst.closeSync();
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** First figure and layer switches in Chromium on one trace (the server already up). */
async function pageTimes(url: string, targets: number[], runs: number): Promise<{ firsts: number[]; switches: number[] }> {
  const browser = await launchBrowser();
  const firsts: number[] = [];
  const switches: number[] = [];
  try {
    for (let run = 0; run < runs; run++) {
      const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
      await page.goto(url);
      await page.waitForFunction(() => document.getElementById('figure')?.dataset.drawn !== undefined, undefined, { timeout: 120_000 });
      firsts.push(await page.evaluate(() => performance.getEntriesByName('moescope:figure-drawn')[0]?.startTime ?? NaN));
      // Layer switches through the slider, as a user scrubs: each waits until the new panel is drawn.
      for (const target of targets) {
        switches.push(await page.evaluate(async (layer) => {
          const fig = document.getElementById('figure')!;
          const slider = document.querySelector<HTMLInputElement>('#view-figure input.layer-slider')!;
          const t = performance.now();
          slider.value = String(layer);
          slider.dispatchEvent(new Event('input', { bubbles: true }));
          while (fig.dataset.panels !== String(layer) || !fig.querySelector('svg, canvas')) await new Promise((r) => requestAnimationFrame(r));
          return performance.now() - t;
        }, target));
      }
      await page.close();
    }
  } finally {
    await browser.close();
  }
  return { firsts, switches };
}

/** The 128-expert trace: first figure and a layer switch, beside the bare DuckDB GROUP BY the figure needs. */
export async function bench128(): Promise<BenchRow[]> {
  await syntheticTrace(TRACE_128, OPTS_128);
  await withAggregates(TRACE_128);
  const routing = `read_parquet('${join(TRACE_128, 'routing.parquet')}')`;
  // The peer: the bare count over the routing rows by (layer, domain, expert), each of the k choices counted.
  const bare = `SELECT r.layer, s.domain, e, count(*) FROM (SELECT layer, sample, unnest(expert) AS e FROM ${routing}) r
    JOIN read_parquet('${join(TRACE_128, 'samples.parquet')}') s USING (sample) GROUP BY ALL`;
  const bareMs = median([await bareQuery(bare), await bareQuery(bare), await bareQuery(bare)]);
  const one = (l: number) => bare.replace('GROUP BY ALL', `WHERE r.layer = ${l} GROUP BY ALL`);
  const bareOne = median([await bareQuery(one(7)), await bareQuery(one(23)), await bareQuery(one(41))]);
  const server = await serve([TRACE_128, '--port', '0'], 300_000);
  try {
    const { firsts, switches } = await pageTimes(server.url, [12, 30, 5, 44, 20], 3);
    const meta = JSON.parse(readFileSync(join(TRACE_128, 'meta.json'), 'utf8')) as { tokens: Record<string, number> };
    const tokens = Object.values(meta.tokens).reduce((a, b) => a + b, 0);
    const note = `128 experts x 48 layers, top-8, text only by domain, ${(tokens / 1e3).toFixed(0)}k tokens`;
    return [
      { name: 'web 128 experts: time to first figure (nav -> drawn)', ours: median(firsts), peer: bareMs, unit: 'ms', higherIsBetter: false, peerName: 'bare DuckDB GROUP BY layer, domain, expert', note },
      { name: 'web 128 experts: layer switch (slider -> new panel)', ours: median(switches), peer: bareOne, unit: 'ms', higherIsBetter: false, peerName: 'bare DuckDB GROUP BY, one layer', note: `median of ${switches.length} switches` },
    ];
  } finally {
    await server.stop();
  }
}

export async function bench(): Promise<BenchRow[]> {
  if (!existsSync(join(ROOT, 'dist', 'web', 'index.html'))) throw new Error('the dashboard UI is not built (npm run build)');
  if (!existsSync(join(TRACE, 'meta.json'))) process.stderr.write(`bench web: writing a synthetic 1M-token trace to ${TRACE} (once) ...\n`);
  await syntheticTrace(TRACE, { samples: SAMPLES, layers: 24, experts: 8, topK: 1, imageSize: 32, patchSize: 8, seed: 5 });
  await withAggregates(TRACE);
  const meta = JSON.parse(readFileSync(join(TRACE, 'meta.json'), 'utf8')) as { tokens: Record<string, number> };
  const tokens = Object.values(meta.tokens).reduce((a, b) => a + b, 0);
  const routing = `read_parquet('${join(TRACE, 'routing.parquet')}')`;

  // Peers: the bare scans.
  const bareAll = median([
    await bareQuery(`SELECT layer, modality, expert[1] AS e, count(*) FROM ${routing} GROUP BY ALL`),
    await bareQuery(`SELECT layer, modality, expert[1] AS e, count(*) FROM ${routing} GROUP BY ALL`),
    await bareQuery(`SELECT layer, modality, expert[1] AS e, count(*) FROM ${routing} GROUP BY ALL`),
  ]);
  const oneLayer = (l: number) => `SELECT modality, expert[1] AS e, count(*) FROM ${routing} WHERE layer = ${l} GROUP BY ALL`;
  const bareOne = median([await bareQuery(oneLayer(3)), await bareQuery(oneLayer(11)), await bareQuery(oneLayer(17))]);

  const rows128 = await bench128();
  const t0 = performance.now();
  const server = await serve([TRACE, '--port', '0'], 300_000);
  const startMs = performance.now() - t0;
  try {
    const { firsts, switches } = await pageTimes(server.url, [12, 5, 20, 9, 15], 3);
    const note = `${(tokens / 1e6).toFixed(2)}M tokens x 24 layers, median of ${firsts.length} loads`;
    return [
      { name: 'web: time to first figure (nav -> SVG)', ours: median(firsts), peer: bareAll, unit: 'ms', higherIsBetter: false, peerName: 'bare DuckDB GROUP BY, all layers', target: '< 1500 ms', note },
      { name: 'web: layer switch (slider -> new panel)', ours: median(switches), peer: bareOne, unit: 'ms', higherIsBetter: false, peerName: 'bare DuckDB GROUP BY, one layer', target: '< 150 ms', note: `median of ${switches.length} switches` },
      { name: 'web: server start (spawn -> serving line)', ours: startMs, peer: bareAll, unit: 'ms', higherIsBetter: false, peerName: 'bare DuckDB GROUP BY, all layers', note: 'opens the trace and reads its aggregates (no row scan)' },
      ...rows128,
    ];
  } finally {
    await server.stop();
  }
}
