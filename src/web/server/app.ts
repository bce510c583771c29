import { existsSync, readFileSync } from 'node:fs';
import { basename, isAbsolute, join, resolve } from 'node:path';
import { Hono, type Context } from 'hono';
import { DEFAULT_MODEL_DIR } from '../../io/checkpoint-files.js';
import { ApiError } from './api-error.js';
import { isTraversal, StaticAssets } from './static-assets.js';
import { COUNT_MODES, type CountMode } from '../../analysis/types.js';
import type { TraceQueries } from './trace-queries.js';

const MODEL_FILES = ['config.json', 'tokenizer.json', 'model.safetensors'] as const;

export interface AppOptions {
  traces: TraceQueries[]; // [A] or [A, B] with --compare
  assets: StaticAssets;
  /** Host header values accepted (DNS-rebinding guard); null accepts any (remote binds). */
  allowedHosts: Set<string> | null;
  modelDir?: string | null; // the checkpoint the playground runs; default: the trace's, else the bundled one
}

function intParam(value: string | undefined, name: string, dflt?: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined || value === '') {
    if (dflt === undefined) throw new ApiError(400, `missing parameter ${name}`);
    return dflt;
  }
  if (!/^-?\d+$/.test(value)) throw new ApiError(400, `${name} must be an integer, got ${JSON.stringify(value)}`);
  const n = Number(value);
  if (n < min || n > max) throw new ApiError(400, `${name} must be between ${min} and ${max}, got ${n}`);
  return n;
}

function choice<T extends string>(value: string | undefined, name: string, options: readonly T[], dflt: T): T {
  if (value === undefined || value === '') return dflt;
  if (!options.includes(value as T)) throw new ApiError(400, `${name} must be one of ${options.join(', ')}, got ${JSON.stringify(value)}`);
  return value as T;
}

function modalitiesParam(value: string | undefined): string[] {
  const mods = (value ?? 'text,image').split(',').map((m) => m.trim()).filter(Boolean);
  if (!mods.length || mods.some((m) => !/^[a-z_]{1,20}$/.test(m))) throw new ApiError(400, `modalities must be a comma-separated list of names, got ${JSON.stringify(value)}`);
  return [...new Set(mods)];
}

/** The checkpoint the playground loads: the trace's own model folder when it still exists, else the bundled model. */
export function playgroundModelDir(t: TraceQueries): string | null {
  const p = t.trace.meta.model?.path;
  if (typeof p === 'string' && p) {
    const dir = isAbsolute(p) ? p : resolve(t.trace.dir, p);
    if (MODEL_FILES.every((f) => existsSync(join(dir, f)))) return dir;
  }
  return MODEL_FILES.every((f) => existsSync(join(DEFAULT_MODEL_DIR, f))) ? DEFAULT_MODEL_DIR : null;
}

/** The dashboard's HTTP app: read-only JSON API over the trace(s) and the built UI. */
export function createApp(o: AppOptions): Hono {
  const app = new Hono();
  const [A] = o.traces;
  const modelDir = o.modelDir === undefined ? playgroundModelDir(A) : o.modelDir;

  app.onError((err, c) => {
    if (err instanceof ApiError) return c.json({ error: err.message }, err.status);
    const msg = (err instanceof Error ? err.message : String(err)).split('\n')[0];
    process.stderr.write(`moescope: serve: ${c.req.method} ${c.req.path}: ${msg}\n`);
    return c.json({ error: `internal error: ${msg}` }, 500);
  });
  app.notFound((c) => (c.req.path.startsWith('/api/') ? c.json({ error: `no such API endpoint: ${c.req.path}` }, 404) : c.text('not found', 404)));

  app.use('*', async (c, next) => {
    const incoming = (c.env as { incoming?: { url?: string } } | undefined)?.incoming;
    const raw = incoming?.url ?? new URL(c.req.url).pathname;
    if (isTraversal(raw)) return c.text('not found', 404);
    if (o.allowedHosts && !o.allowedHosts.has((c.req.header('host') ?? '').toLowerCase())) {
      return c.text('forbidden: unexpected Host header', 403);
    }
    if (c.req.method !== 'GET' && c.req.method !== 'HEAD') return c.json({ error: 'read-only: only GET and HEAD' }, 405);
    await next();
    c.header('X-Content-Type-Options', 'nosniff');
  });

  const pick = (c: Context): TraceQueries => {
    const t = c.req.query('trace') ?? 'a';
    if (t === 'a') return A;
    if (t === 'b' && o.traces[1]) return o.traces[1];
    throw new ApiError(404, t === 'b' ? 'no second trace: start with `moescope serve A --compare B`' : `trace must be a or b, got ${JSON.stringify(t)}`);
  };
  app.get('/api/info', (c) => {
    let modelConfig: unknown = null;
    if (modelDir) {
      try {
        modelConfig = JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8'));
      } catch { /* reported by the playground when it loads */ }
    }
    return c.json({
      traces: o.traces.map((t) => ({
        name: t.trace.name, folder: basename(t.trace.dir), meta: t.trace.meta, layers: t.layers, modalities: t.modalities,
        patchesPerImage: t.patchesPerImage, rows: t.trace.rows, hasSamples: t.trace.samples !== null,
      })),
      model: modelDir ? { folder: basename(modelDir), config: modelConfig } : null,
    });
  });

  // Counts of every layer (tiny: L x E x M): the page picks layers, normalises and sorts itself, with the same functions as `moescope plot`.
  app.get('/api/counts', async (c) => {
    const t = pick(c);
    const mode = choice<CountMode>(c.req.query('count'), 'count', COUNT_MODES, 'all');
    return c.json(await t.countsJson(mode, modalitiesParam(c.req.query('modalities'))));
  });

  app.get('/api/metrics', async (c) => {
    const t = pick(c);
    const mode = choice<CountMode>(c.req.query('count'), 'count', COUNT_MODES, 'all');
    return c.json({ count: mode, layers: await t.metrics(mode, modalitiesParam(c.req.query('modalities'))) });
  });

  app.get('/api/samples', async (c) => {
    const t = pick(c);
    const offset = intParam(c.req.query('offset'), 'offset', 0);
    const limit = intParam(c.req.query('limit'), 'limit', 50, 1, 500);
    return c.json(await t.sampleList(offset, limit, (c.req.query('q') ?? '').slice(0, 200)));
  });

  app.get('/api/samples/:id', async (c) => {
    const t = pick(c);
    return c.json(await t.sample(intParam(c.req.param('id'), 'sample')));
  });

  app.get('/api/samples/:id/images/:k', async (c) => {
    const t = pick(c);
    const k = c.req.param('k').replace(/\.png$/, '');
    const png = await t.image(intParam(c.req.param('id'), 'sample'), intParam(k, 'image'));
    return c.body(new Uint8Array(png), 200, { 'Content-Type': 'image/png', 'Cache-Control': 'max-age=3600' });
  });

  app.get('/api/experts/:layer/:expert', async (c) => {
    const t = pick(c);
    const mode = choice<CountMode>(c.req.query('count'), 'count', COUNT_MODES, 'all');
    const modality = modalitiesParam(c.req.query('modality') ?? 'image')[0];
    return c.json(await t.expert(
      intParam(c.req.param('layer'), 'layer', undefined, -1e6), intParam(c.req.param('expert'), 'expert', undefined, -1e6), mode, modality,
      intParam(c.req.query('offset'), 'offset', 0), intParam(c.req.query('limit'), 'limit', 48, 1, 500),
    ));
  });

  app.get('/api/flow', async (c) => {
    const t = pick(c);
    const a = intParam(c.req.query('a'), 'a', undefined, -1e6);
    const b = intParam(c.req.query('b'), 'b', undefined, -1e6);
    return c.json({ a, b, rows: await t.flow(a, b, modalitiesParam(c.req.query('modalities'))) });
  });

  // Compare: both traces' counts; the page shows them side by side and their per-expert differences.
  app.get('/api/compare', async (c) => {
    const B = o.traces[1];
    if (!B) throw new ApiError(404, 'no second trace: start with `moescope serve A --compare B`');
    const mode = choice<CountMode>(c.req.query('count'), 'count', COUNT_MODES, 'all');
    const mods = modalitiesParam(c.req.query('modalities'));
    return c.json({ names: [basename(A.trace.dir), basename(B.trace.dir)], a: await A.countsJson(mode, mods), b: await B.countsJson(mode, mods) });
  });

  app.get('/api/model/:file', (c) => {
    const file = c.req.param('file');
    if (!(MODEL_FILES as readonly string[]).includes(file)) throw new ApiError(404, `no model file ${JSON.stringify(file)} (only ${MODEL_FILES.join(', ')})`);
    if (!modelDir) throw new ApiError(404, 'no model to run: the trace names no checkpoint folder and the bundled model is missing');
    const body = new Uint8Array(readFileSync(join(modelDir, file)));
    return c.body(body, 200, { 'Content-Type': file.endsWith('.json') ? 'application/json' : 'application/octet-stream', 'Cache-Control': 'no-cache' });
  });

  app.get('*', (c) => {
    if (c.req.path.startsWith('/api/')) throw new ApiError(404, `no such API endpoint: ${c.req.path}`);
    if (!o.assets.built) {
      return c.html('<!doctype html><title>moescope</title><p>The dashboard UI is not built. Run <code>npm run build</code> in the moescope checkout; the API is at <a href="/api/info">/api/info</a>.</p>', 503);
    }
    const f = o.assets.get(c.req.path);
    if (!f) return c.text('not found', 404);
    return c.body(f.body, 200, { 'Content-Type': f.type, 'Cache-Control': f.immutable ? 'max-age=31536000, immutable' : 'no-cache' });
  });
  return app;
}
