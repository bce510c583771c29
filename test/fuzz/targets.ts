import fc from 'fast-check';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeTestPng } from '../data/png-writer.js';
import { tinyConfig } from '../train/helpers.js';
import type { FuzzCase } from './pool.js';
import { hostileValue, mutateBytes, mutateJson, mutateJsonl } from './mutate.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const TINY = join(ROOT, 'test/fixtures/efmoe-tiny-k1');
const FIX = (f: string) => join(ROOT, 'test/fixtures', f);

/** Who owns the reader a target exercises (AREAS.md): failures are fixed there. */
export type Area = 'safety' | 'engine' | 'render' | 'importers';

export interface Target {
  name: string;
  area: Area;
  /** Relative cost of one case (demo and train are slower), to spread a budget of runs. */
  weight: number;
  arb: fc.Arbitrary<FuzzCase>;
}

const enc = (s: string) => new TextEncoder().encode(s);
const read = (p: string) => new Uint8Array(readFileSync(p));

/** The files of a folder (one level), keyed by `prefix/name`. */
function folder(dir: string, prefix: string): Record<string, Uint8Array> {
  const out: Record<string, Uint8Array> = {};
  const walk = (d: string, rel: string) => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p, `${rel}/${f}`);
      else out[`${rel}/${f}`] = read(p);
    }
  };
  walk(dir, prefix);
  return out;
}

/** Strings that break integer, list and path flags. */
const hostileFlag = fc.constantFrom('0', '-1', '1', '2', '1e9', '1000000000', '4294967296', '1000000000000', '99999999999999999999', 'abc', '', ' ', '1.5', '0x10', '+1', '1,2', 'NaN', '-0');

const CAPTURE_BASE = ['--threads', '1'];

/** A good trace, made once by the real CLI, for the trace readers' targets. */
function goodTrace(): Record<string, Uint8Array> {
  const d = mkdtempSync(join(tmpdir(), 'moescope-fuzz-trace-'));
  try {
    const r = spawnSync(process.execPath, [join(ROOT, 'bin/moescope'), 'capture', '--model', TINY, '--data', 'shapes:2', '--out', join(d, 't'), '--full-probs'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`fuzz setup: capture failed: ${r.stderr}`);
    return folder(join(d, 't'), 'trace');
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
}

function flagsArb(pairs: [string, fc.Arbitrary<string>][], switches: string[] = []): fc.Arbitrary<string[]> {
  const one = fc.oneof(
    ...pairs.map(([flag, v]) => v.map((x) => [flag, x])),
    ...(switches.length ? [fc.constantFrom(...switches).map((s) => [s])] : []),
  );
  return fc.array(one, { minLength: 1, maxLength: 3 }).map((xs) => xs.flat());
}

export function makeTargets(): Target[] {
  const model = folder(TINY, 'model');
  const config = JSON.parse(new TextDecoder().decode(model['model/config.json']));
  const tokenizer = JSON.parse(new TextDecoder().decode(model['model/tokenizer.json']));
  const png = writeTestPng({ width: 8, height: 8, colorType: 2, depth: 8, samples: Array.from({ length: 192 }, (_, i) => (i * 37) & 255) });
  const jsonl = ['{"image": "img.png", "text": "a red circle"}', '{"parts": [{"text": "two"}, {"image": "img.png"}]}', '{"text": "just words", "domain": "captions"}'].join('\n') + '\n';
  const trainCfg = tinyConfig({ steps: 1, eval_every: 0, eval_samples: 2, checkpoint_every: 0, batch: 2 });
  const capture = (files: Record<string, Uint8Array>, modelDir = '$D/model', data = 'shapes:1'): FuzzCase => ({
    files, args: ['capture', '--model', modelDir, '--data', data, '--out', '$D/out', ...CAPTURE_BASE], out: 'out',
  });
  let trace: Record<string, Uint8Array> | null = null;
  const traceFiles = () => (trace ??= goodTrace());
  const traceFile = (name: string) => fc.constant(null).map(() => traceFiles()[`trace/${name}`]);

  const targets: Target[] = [
    { name: 'safetensors', area: 'safety', weight: 1, arb: mutateBytes(model['model/model.safetensors']).map((w) => capture({ ...model, 'model/model.safetensors': w })) },
    { name: 'config.json', area: 'safety', weight: 1, arb: mutateJson(config, { pretty: true }).map((c) => capture({ ...model, 'model/config.json': c })) },
    { name: 'tokenizer.json', area: 'safety', weight: 1, arb: mutateJson(tokenizer).map((t) => capture({ ...model, 'model/tokenizer.json': t })) },
    { name: 'jsonl', area: 'safety', weight: 1, arb: mutateJsonl(jsonl).map((d) => capture({ 'data.jsonl': d, 'img.png': png }, TINY, '$D/data.jsonl')) },
    { name: 'png', area: 'safety', weight: 1, arb: mutateBytes(png).map((p) => capture({ 'data.jsonl': enc(jsonl), 'img.png': p }, TINY, '$D/data.jsonl')) },
    {
      name: 'train-config', area: 'safety', weight: 2,
      arb: mutateJson(trainCfg, { pretty: true }).map((c) => ({ files: { 'c.json': c }, args: ['train', '--config', '$D/c.json', '--out', '$D/out', '--steps', '1', '--workers', '1'], out: 'out' })),
    },
    {
      name: 'flags-capture', area: 'safety', weight: 1,
      arb: flagsArb([
        ['--batch', hostileFlag], ['--threads', hostileFlag],
        ['--data', fc.constantFrom('shapes:0', 'shapes:-1', 'shapes:1:99999999999', 'shapes:x', 'shapes:1:2:3', 'shapes:2', 'nope.jsonl', '$D/nope.jsonl', '/dev/zero', '$D', '*.jsonl', 'shapes:1e9')],
        ['--model', fc.constantFrom('$D', '/', '/dev/null', '$D/nope', '.', TINY)],
        ['--out', fc.constantFrom('.', '$D', '/', '$D/out', '', '$D/a/b/c')],
      ], ['--full-probs', '--force', '--bogus']).map((extra) => ({ files: { 'keep.txt': enc('mine') }, args: ['capture', '--model', TINY, '--data', 'shapes:1', '--out', '$D/out', ...CAPTURE_BASE, ...extra], out: 'out' })),
    },
    {
      name: 'flags-demo', area: 'safety', weight: 3,
      arb: flagsArb([['--samples', hostileFlag.filter((s) => s !== '2' && s !== '1000000000')], ['--seed', hostileFlag], ['--out', fc.constantFrom('.', '$D', '/', '', '$D/x/y')]], ['--force', '--bogus'])
        .map((extra) => ({ files: { 'keep.txt': enc('mine') }, args: ['demo', '--samples', '1', '--out', '$D/out', ...extra], out: 'out' })),
    },
    {
      name: 'flags-train', area: 'safety', weight: 2,
      arb: flagsArb([['--steps', hostileFlag.filter((s) => s !== '1000000000')], ['--seed', hostileFlag], ['--stop-at', hostileFlag], ['--workers', hostileFlag], ['--config', fc.constantFrom('$D', '/dev/zero', '$D/nope.json', '$D/keep.txt')]], ['--resume', '--force', '--bogus'])
        .map((extra) => ({ files: { 'c.json': enc(JSON.stringify(trainCfg)), 'keep.txt': enc('mine') }, args: ['train', '--config', '$D/c.json', '--out', '$D/out', '--steps', '1', '--workers', '1', ...extra], out: 'out' })),
    },
    // trace readers (engine): meta.json and routing.parquet damaged
    {
      name: 'trace-meta.json', area: 'engine', weight: 1,
      arb: fc.constant(null).chain(() => mutateJson(JSON.parse(new TextDecoder().decode(traceFiles()['trace/meta.json'])), { pretty: true }))
        .map((m) => ({ files: { ...traceFiles(), 'trace/meta.json': m }, args: ['analyze', '$D/trace', '--json'] })),
    },
    {
      name: 'trace-routing.parquet', area: 'engine', weight: 1,
      arb: traceFile('routing.parquet').chain((p) => mutateBytes(p)).map((p) => ({ files: { ...traceFiles(), 'trace/routing.parquet': p }, args: ['analyze', '$D/trace', '--json'] })),
    },
    {
      name: 'flags-analyze', area: 'engine', weight: 1,
      arb: flagsArb([['--layers', fc.constantFrom('0-1000000000', 'all', '0,1', '-1', 'x', '1-0', '99', '0-999999999999', '', '0,,1')], ['--count', fc.constantFrom('all', 'top1', 'gate', 'x')], ['--modalities', fc.constantFrom('text,image', '', 'x', ',')]], ['--json', '--bogus'])
        .map((extra) => ({ files: traceFiles(), args: ['analyze', '$D/trace', ...extra] })),
    },
    {
      name: 'flags-plot', area: 'render', weight: 1,
      arb: flagsArb([['--layers', fc.constantFrom('0-1000000000', 'all', '0,1', '-1', 'x', '99')], ['--columns', hostileFlag], ['--width', hostileFlag], ['--normalize', fc.constantFrom('expert', 'group', 'x')], ['--sort', fc.constantFrom('text', 'id', 'x')], ['--out', fc.constantFrom('$D/trace', '$D', '$D/a/b.svg', '$D/x.jpg', '$D/out.png')]])
        .map((extra) => ({ files: traceFiles(), args: ['plot', '$D/trace', '--out', '$D/out.svg', ...extra], out: 'out.svg' })),
    },
  ];

  // importers: each format's fixture files, damaged, imported with the flags its tests use
  const imports: [string, string, Record<string, Uint8Array>, string[], string[]][] = [
    ['import-csv', 'csv', { 'in/moe_trace.csv': read(FIX('import-csv/moe_trace.csv')) }, ['$D/in/moe_trace.csv'], ['--image-token-id', '9', '--num-experts', '8']],
    ['import-vllm', 'vllm', { 'in/requests.jsonl': read(FIX('import-vllm/requests.jsonl')) }, ['$D/in/requests.jsonl'], ['--image-token-id', '9', '--num-experts', '8']],
    ['import-olmoe', 'olmoe', { 'in/c4_results.jsonl': read(FIX('import-olmoe/c4_results.jsonl')) }, ['$D/in/c4_results.jsonl'], ['--image-token-id', '9', '--num-experts', '8']],
    ['import-megatron', 'megatron', folder(FIX('import-megatron'), 'in'), ['$D/in'], ['--micro-batch', '2', '--modality', '$D/in/modality.jsonl']],
    ['import-hf', 'hf', { 'in/llava_logits.safetensors': read(FIX('import-hf/llava_logits.safetensors')) }, ['$D/in/llava_logits.safetensors'], ['--image-placeholder-id', '-200', '--moe-layers', '1,3', '--num-layers', '4', '--top-k', '1', '--special-ids', '1,2']],
  ];
  for (const [name, format, files, inputs, flags] of imports) {
    const names = Object.keys(files).filter((f) => !f.endsWith('expected.json'));
    const base = Object.fromEntries(names.map((f) => [f, files[f]]));
    targets.push({
      name, area: 'importers', weight: 1,
      arb: fc.constantFrom(...names).chain((f) => (f.endsWith('.jsonl') ? mutateJsonl(new TextDecoder().decode(base[f])) : mutateBytes(base[f])).map((m) => ({ f, m })))
        .map(({ f, m }) => ({ files: { ...base, [f]: m }, args: ['import', format, ...inputs, '--out', '$D/out', ...flags], out: 'out' })),
    });
  }
  targets.push({
    name: 'flags-import', area: 'importers', weight: 1,
    arb: flagsArb([['--num-experts', hostileFlag], ['--top-k', hostileFlag], ['--num-layers', hostileFlag], ['--moe-layers', fc.constantFrom('0-999999999999', '1-0', 'x', '0,1', '-1')], ['--image-token-id', hostileFlag], ['--micro-batch', hostileFlag]], ['--full-probs', '--bogus'])
      .map((extra) => ({ files: { 'in/moe_trace.csv': read(FIX('import-csv/moe_trace.csv')) }, args: ['import', 'csv', '$D/in/moe_trace.csv', '--out', '$D/out', ...extra], out: 'out' })),
  });
  void hostileValue;
  return targets;
}
