import { existsSync, readFileSync } from 'node:fs';
import { basename, isAbsolute, join, resolve } from 'node:path';
import { serveStatic } from '@hono/node-server/serve-static';
import { Hono, type Context } from 'hono';
import { DEFAULT_MODEL_DIR } from '../../io/checkpoint-files.js';
import { COUNT_MODES, type CountMode } from '../../analysis/types.js';
import type { CompareJson, Info, MetricsJson, ModelInfo, TraceInfo } from '../api-types.js';
import { ApiError } from './api-error.js';
import { compareTraces } from './compare-traces.js';
import { isTraversal, uiBuilt } from './request-guard.js';
import type { TraceQueries } from './trace-queries.js';

const MODEL_FILES = ['config.json', 'tokenizer.json', 'model.safetensors'] as const;

export interface AppOptions {
  traces: TraceQueries[]; // [A] or [A, B, C, ...] with --compare
  /** The built UI folder (Vite output), served as static files. */
  uiDir: string;
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

/** A comma-separated list of group names (modalities, domains, ...): each checked against the trace later. */
function groupsParam(value: string | undefined, dflt: readonly string[]): string[] {
  if (value === undefined) return [...dflt];
  const gs = value.split(',').map((m) => m.trim()).filter(Boolean);
  if (!gs.length || gs.length > 64 || gs.some((m) => m.length > 100 || /[\0-\x1f]/.test(m))) throw new ApiError(400, `groups must be a comma-separated list of names, got ${JSON.stringify(value.slice(0, 200))}`);
  return [...new Set(gs)];
}

/** `by` and its groups from a request: `?by=domain&groups=arxiv,github` (`modalities` is the older name of `groups`). */
function grouping(c: Context, t: TraceQueries): { by: string; groups: string[] } {
  const by = c.req.query('by') || t.grouping.by;
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(by)) throw new ApiError(400, `by must be a column name, got ${JSON.stringify(by.slice(0, 100))}`);
  const avail = t.checkBy(by);
  const dflt = by === t.grouping.by ? t.grouping.groups : by === 'modality' ? ['text', 'image'].filter((m) => avail.groups.includes(m)) : avail.groups;
  return { by, groups: groupsParam(c.req.query('groups') ?? c.req.query('modalities'), dflt.length ? dflt : avail.groups) };
}

/** The checkpoint the playground loads, and whether it made trace A (never pretend: an imported trace's model is not ours). */
export function playgroundModel(t: TraceQueries): { dir: string; info: Omit<ModelInfo, 'config'> } | null {
  const has = (dir: string) => MODEL_FILES.every((f) => existsSync(join(dir, f)));
  const p = t.trace.meta.model?.path;
  if (typeof p === 'string' && p) {
    const dir = isAbsolute(p) ? p : resolve(t.trace.dir, p);
    if (has(dir)) return { dir, info: { folder: basename(dir), source: resolve(dir) === resolve(DEFAULT_MODEL_DIR) ? 'bundled' : 'trace', ofTrace: true, reason: null } };
  }
  if (!has(DEFAULT_MODEL_DIR)) return null;
  const reason = typeof p === 'string' && p
    ? `This trace was captured with the checkpoint ${p}, which is not here any more; the playground would run the bundled model instead, whose routing is not this trace's.`
    : 'This trace was not captured by moescope from a checkpoint (meta.json names no model: imported or hand-made), so the playground cannot run its model; the bundled model routes differently.';
  return { dir: DEFAULT_MODEL_DIR, info: { folder: basename(DEFAULT_MODEL_DIR), source: 'bundled', ofTrace: false, reason } };
}

function traceInfo(t: TraceQueries): TraceInfo {
  return {
    name: t.trace.name, folder: basename(t.trace.dir), meta: t.trace.meta, layers: t.layers, modalities: t.modalities,
    patchesPerImage: t.patchesPerImage, patchGrid: t.patchGrid, rows: t.trace.rows, hasSamples: t.trace.samples !== null, grouping: t.grouping,
  };
}

/** The dashboard's HTTP app: read-only JSON API over the trace(s) and the built UI. */
export function createApp(o: AppOptions): Hono {
  const app = new Hono();
  const [A] = o.traces;
  const pm = o.modelDir === undefined ? playgroundModel(A) : o.modelDir === null ? null : { dir: o.modelDir, info: { folder: basename(o.modelDir), source: 'trace' as const, ofTrace: true, reason: null } };
  const modelDir = pm?.dir ?? null;

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
    const i = /^[a-z]$/.test(t) ? t.charCodeAt(0) - 97 : -1;
    if (i >= 0 && o.traces[i]) return o.traces[i];
    if (i >= 1) throw new ApiError(404, `no trace ${JSON.stringify(t)}: start with \`moescope serve A --compare B ...\``);
    throw new ApiError(404, `trace must be a letter a-${String.fromCharCode(96 + o.traces.length)}, got ${JSON.stringify(t.slice(0, 20))}`);
  };
  const countMode = (c: Context) => choice<CountMode>(c.req.query('count'), 'count', COUNT_MODES, 'all');

  app.get('/api/info', (c) => {
    let config: Record<string, unknown> | null = null;
    if (modelDir) {
      try {
        config = JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8')) as Record<string, unknown>;
      } catch { /* reported by the playground when it loads */ }
    }
    return c.json({ traces: o.traces.map(traceInfo), model: pm ? { ...pm.info, config } : null } satisfies Info);
  });

  // Counts of every layer (tiny: L x E x G): the page picks layers, normalises and sorts itself, with the same functions as `moescope plot`.
  app.get('/api/counts', async (c) => {
    const t = pick(c);
    const g = grouping(c, t);
    return c.json(await t.countsJson(countMode(c), g.groups, g.by));
  });

  app.get('/api/metrics', async (c) => {
    const t = pick(c);
    const g = grouping(c, t);
    const mode = countMode(c);
    return c.json({ count: mode, by: g.by, layers: await t.metrics(mode, g.groups, g.by) } satisfies MetricsJson);
  });

  // Router confidence, repeat rate, token specialisation per layer (SPEC §3 names).
  app.get('/api/layer-stats', async (c) => {
    const t = pick(c);
    const g = grouping(c, t);
    return c.json(await t.layerStats(g.by, g.groups));
  });

  app.get('/api/coactivation/:layer', async (c) => {
    const t = pick(c);
    const g = grouping(c, t);
    return c.json(await t.coactivation(intParam(c.req.param('layer'), 'layer', undefined, -1e6), g.by, g.groups));
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
    const modality = c.req.query('modality') || (t.modalities.includes('image') ? 'image' : 'text');
    const token = c.req.query('token');
    return c.json(await t.expert(
      intParam(c.req.param('layer'), 'layer', undefined, -1e6), intParam(c.req.param('expert'), 'expert', undefined, -1e6), countMode(c), modality,
      intParam(c.req.query('offset'), 'offset', 0), intParam(c.req.query('limit'), 'limit', 48, 1, 500),
      token === undefined || token === '' ? null : intParam(token, 'token', undefined, -(2 ** 31), 2 ** 31),
    ));
  });

  app.get('/api/flow', async (c) => {
    const t = pick(c);
    const g = grouping(c, t);
    const a = intParam(c.req.query('a'), 'a', undefined, -1e6);
    const b = intParam(c.req.query('b'), 'b', undefined, -1e6);
    return c.json(await t.flow(a, b, g.by, g.groups));
  });

  // Compare many traces: per layer S, load CV and saturation against A; counts only when experts match by id.
  app.get('/api/compare', async (c) => {
    if (o.traces.length < 2) throw new ApiError(404, 'no second trace: start with `moescope serve A --compare B [C ...]`');
    const g = grouping(c, A);
    return c.json(await compareTraces(A.conn, o.traces, countMode(c), g.by, g.groups) satisfies CompareJson);
  });

  app.get('/api/model/:file', (c) => {
    const file = c.req.param('file');
    if (!(MODEL_FILES as readonly string[]).includes(file)) throw new ApiError(404, `no model file ${JSON.stringify(file)} (only ${MODEL_FILES.join(', ')})`);
    if (!modelDir) throw new ApiError(404, 'no model to run: the trace names no checkpoint folder and the bundled model is missing');
    const body = new Uint8Array(readFileSync(join(modelDir, file)));
    return c.body(body, 200, { 'Content-Type': file.endsWith('.json') ? 'application/json' : 'application/octet-stream', 'Cache-Control': 'no-cache' });
  });

  app.all('/api/*', (c) => {
    throw new ApiError(404, `no such API endpoint: ${c.req.path}`);
  });

  // The UI: hono's own static serving from the build folder (the traversal guard above has already run).
  if (!uiBuilt(o.uiDir)) {
    app.get('*', (c) => c.html('<!doctype html><title>moescope</title><p>The dashboard UI is not built. Run <code>npm run build</code> in the moescope checkout; the API is at <a href="/api/info">/api/info</a>.</p>', 503));
  } else {
    app.use('/assets/*', async (c, next) => {
      await next();
      if (c.res.status === 200) c.header('Cache-Control', 'max-age=31536000, immutable'); // file names carry a content hash
    });
    app.get('*', serveStatic({ root: o.uiDir, onFound: (_p, c) => { if (!c.req.path.startsWith('/assets/')) c.header('Cache-Control', 'no-cache'); } }));
  }
  return app;
}
