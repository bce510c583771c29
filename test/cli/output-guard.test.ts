import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, assertInputError, cli, cliAsync, copyModel, snapshot, tempDir, writeJson } from './harness.js';
import { tinyConfig } from '../train/helpers.js';

// Issue 9, "Data loss": every way --out could destroy a folder that is not our output of the same kind.

let dir = '';
let model = '';
let good = ''; // a good trace, kept as it is by every failed run
let goodSnap: Record<string, string> = {};

before(() => {
  dir = tempDir('guard');
  model = copyModel(dir);
  good = join(dir, 'good');
  const r = cli(['capture', '--model', model, '--data', 'shapes:2', '--out', good]);
  assert.equal(r.code, 0, r.stderr);
  goodSnap = snapshot(good);
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** A run that must be refused: exit 2, one line, the victim folder's files intact, no leftovers beside it. */
function refused(args: string[], victim: string, pattern: RegExp, cwd?: string) {
  const before = snapshot(victim);
  const siblings = readdirSync(join(victim, '..')).sort();
  const r = cli(args, { cwd });
  assertInputError(r, pattern, args.join(' '));
  assert.deepEqual(snapshot(victim), before, `${args.join(' ')}: the folder's files are intact`);
  assert.deepEqual(readdirSync(join(victim, '..')).sort(), siblings, `${args.join(' ')}: nothing new beside it (no temporaries)`);
}

function folderWithFile(name: string): string {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  writeFileSync(join(d, 'x'), 'hi\n');
  return d;
}

test('a folder with other files is refused by capture, demo, import and train (and kept)', () => {
  const d = folderWithFile('other');
  refused(['capture', '--model', model, '--data', 'shapes:2', '--out', d], d, /--out .*other: holds other files \(x\).*--force/);
  refused(['demo', '--samples', '2', '--out', d], d, /holds other files \(x\)/);
  refused(['import', 'csv', join(ROOT, 'test/fixtures/import-csv/moe_trace.csv'), '--out', d], d, /holds other files \(x\)/);
  const cfg = writeJson(join(dir, 'train.json'), tinyConfig({ steps: 1 }));
  refused(['train', '--config', cfg, '--out', d], d, /holds other files \(x\)/);
});

test('the checkpoint, the input data folder, the working folder, its parent and / are refused', () => {
  refused(['capture', '--model', model, '--data', 'shapes:2', '--out', model], model, /is an input of this run/);
  // a checkpoint that is not an input of this run is still not a trace
  const other = copyModel(dir, 'other-model');
  refused(['capture', '--model', model, '--data', 'shapes:2', '--out', other], other, /is a checkpoint/);

  const data = join(dir, 'data');
  mkdirSync(data);
  writeFileSync(join(data, 's.jsonl'), '{"text": "a red circle"}\n');
  refused(['capture', '--model', model, '--data', join(data, 's.jsonl'), '--out', data], data, /contains an input of this run/);

  const work = join(dir, 'work');
  mkdirSync(work);
  writeFileSync(join(work, 'notes.txt'), 'mine');
  refused(['capture', '--model', model, '--data', 'shapes:2', '--out', '.'], work, /is the working folder/, work);
  refused(['capture', '--model', model, '--data', 'shapes:2', '--out', work], work, /is the working folder/, work);
  refused(['demo', '--samples', '2', '--out', '.'], work, /is the working folder/, work);
  const r = cli(['capture', '--model', model, '--data', 'shapes:2', '--out', '..'], { cwd: work });
  assertInputError(r, /contains (the working folder|an input of this run)/);
  assertInputError(cli(['capture', '--model', model, '--data', 'shapes:2', '--out', '/']), /is the root folder/);
  // --force never overrides an input or the working folder (demo's input: the bundled checkpoint)
  const bundled = join(ROOT, 'models', 'efmoe-shapes');
  refused(['demo', '--samples', '1', '--out', bundled, '--force'], bundled, /is an input of this run/);
  refused(['capture', '--model', model, '--data', 'shapes:2', '--out', model, '--force'], model, /is an input of this run/);
  refused(['capture', '--model', model, '--data', 'shapes:2', '--out', '.', '--force'], work, /is the working folder/, work);
});

test('an empty or blank JSONL is an input error and never replaces a good trace', () => {
  for (const [name, text] of [['empty.jsonl', ''], ['blank.jsonl', '\n   \n\t\n']]) {
    const f = join(dir, name);
    writeFileSync(f, text);
    refused(['capture', '--model', model, '--data', f, '--out', good], good, new RegExp(`${name.replace('.', '\\.')}: no samples`));
  }
  assert.deepEqual(snapshot(good), goodSnap);
});

test('a trace replaces a trace; --force replaces another folder; an empty folder is fine', () => {
  const t = join(dir, 'replace-me');
  assert.equal(cli(['capture', '--model', model, '--data', 'shapes:2', '--out', t]).code, 0);
  const r = cli(['capture', '--model', model, '--data', 'shapes:3', '--out', t]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(readFileSync(join(t, 'meta.json'), 'utf8'), /shapes:3:/);

  const d = folderWithFile('forced');
  const f = cli(['capture', '--model', model, '--data', 'shapes:2', '--out', d, '--force']);
  assert.equal(f.code, 0, f.stderr);
  assert.equal(existsSync(join(d, 'x')), false);
  assert.ok(existsSync(join(d, 'meta.json')));

  const e = join(dir, 'empty-folder');
  mkdirSync(e);
  assert.equal(cli(['capture', '--model', model, '--data', 'shapes:2', '--out', e]).code, 0);
  // a trace is not a demo output: demo refuses to replace it
  refused(['demo', '--samples', '2', '--out', e], e, /is a trace folder, not a demo output folder/);
});

test('temporaries of a killed run (dead pid) are cleaned by the next run; a live run\'s are kept', () => {
  const out = join(dir, 'cleaned');
  const dead = join(dir, '.cleaned.tmp-2147483646-abc');
  const deadOld = join(dir, '.cleaned.tmp-2147483646-abd.old');
  const live = join(dir, `.cleaned.tmp-${process.pid}-abc`);
  for (const d of [dead, deadOld, live]) {
    mkdirSync(d);
    writeFileSync(join(d, 'routing.parquet'), 'partial');
  }
  const r = cli(['capture', '--model', model, '--data', 'shapes:2', '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(existsSync(dead), false, 'stale temporary removed');
  assert.equal(existsSync(deadOld), false, 'stale .old removed');
  assert.equal(existsSync(live), true, 'a running process keeps its temporary');
  rmSync(live, { recursive: true });
});

test('three captures racing into one --out: no raw ENOENT; each succeeds or says why; the result is one whole trace', async () => {
  const out = join(dir, 'race');
  const rs = await Promise.all([2, 3, 4].map((n) => cliAsync(['capture', '--model', model, '--data', `shapes:${n}`, '--out', out])));
  for (const r of rs) {
    assert.doesNotMatch(r.stderr, /ENOENT|ENOTEMPTY|EEXIST/, r.stderr);
    if (r.code !== 0) assertInputError(r, /another run/);
  }
  assert.ok(rs.some((r) => r.code === 0));
  assert.deepEqual(readdirSync(out).filter((f) => !f.endsWith('.parquet')), ['meta.json']);
  assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('.race.tmp-')), [], 'no temporaries left');
  const meta = JSON.parse(readFileSync(join(out, 'meta.json'), 'utf8'));
  assert.ok(['shapes:2', 'shapes:3', 'shapes:4'].some((s) => String(meta.data).startsWith(s + ':')), meta.data);
});

test('plot: a failed run creates no missing parent folder; --out an input or a folder is refused', () => {
  const missing = join(dir, 'no', 'such', 'parent');
  assertInputError(cli(['plot', good, '--out', join(missing, 'fig.svg'), '--layers', '99']), /layer 99/);
  assert.equal(existsSync(join(dir, 'no')), false, 'no parent folder created');
  refused(['plot', good, '--out', join(good, 'meta.json')], good, /unknown figure format|is an input/);
  const folder = join(dir, 'fig.svg');
  mkdirSync(folder);
  refused(['plot', good, '--out', folder], folder, /is a folder/);
  const ok = cli(['plot', good, '--out', join(missing, 'ok.svg')]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.ok(existsSync(join(missing, 'ok.svg')));
});

test('capture failing mid-run (a bad second JSONL line) leaves no output and no new parent folders', () => {
  const f = join(dir, 'bad-second.jsonl');
  writeFileSync(f, '{"text": "a red circle"}\n{"text": 5}\n');
  assertInputError(cli(['capture', '--model', model, '--data', f, '--out', join(dir, 'new', 'deep', 'trace')]), /bad-second\.jsonl:2: "text" must be a string/);
  assert.equal(existsSync(join(dir, 'new')), false);
});

test('import: --out may not be its input file', () => {
  const csv = join(dir, 'in.csv');
  writeFileSync(csv, readFileSync(join(ROOT, 'test/fixtures/import-csv/moe_trace.csv')));
  const before = readFileSync(csv);
  assertInputError(cli(['import', 'csv', csv, '--out', csv]), /is an input of this run/);
  assert.deepEqual(readFileSync(csv), before);
});

test('train: a failed run leaves no --out; a corrupt log on --resume is exit 2; batch 1e9 is refused at once', () => {
  const out = join(dir, 'train-out', 'run');
  const huge = writeJson(join(dir, 'huge-batch.json'), tinyConfig({ batch: 1e9 }));
  const t0 = Date.now();
  assertInputError(cli(['train', '--config', huge, '--out', out], { timeout: 30_000 }), /batch: 1000000000 is outside 1\.\.65536/);
  assert.ok(Date.now() - t0 < 30_000);
  assert.equal(existsSync(join(dir, 'train-out')), false, 'no --out (nor its parent) left by a failed run');
  const heavy = writeJson(join(dir, 'heavy.json'), tinyConfig({ batch: 65536, hidden_size: 4096, num_attention_heads: 32 }));
  assertInputError(cli(['train', '--config', heavy, '--out', out]), /activation values per step, above the limit/);

  const cfg = writeJson(join(dir, 'ok.json'), tinyConfig({ steps: 2, eval_every: 0, eval_samples: 2 }));
  const run = join(dir, 'run');
  const r = cli(['train', '--config', cfg, '--out', run, '--stop-at', '1']);
  assert.equal(r.code, 0, r.stderr);
  writeFileSync(join(run, 'train-log.jsonl'), readFileSync(join(run, 'train-log.jsonl'), 'utf8') + '{"kind": "train", "step": \n');
  refused(['train', '--config', cfg, '--out', run, '--resume'], run, /train-log\.jsonl:\d+: not valid JSON/);
  writeFileSync(join(run, 'train-log.jsonl'), '[1, 2]\n');
  refused(['train', '--config', cfg, '--out', run, '--resume'], run, /train-log\.jsonl:1: not a training log row/);
});
