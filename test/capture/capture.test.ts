import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodePngRgb } from '../../src/data/png.js';
import { shapesSample } from '../../src/data/shapes.js';
import { encodeSample, sampleText } from '../../src/data/encode.js';
import { forwardInference } from '../../src/model/efmoe.js';
import { WordTokenizer } from '../../src/model/tokenizer.js';
import { parseTraceMeta } from '../../src/trace/meta.js';
import { query, runCli, sqlPath, writeTinyModel } from './helpers.js';

test('capture through the CLI: SPEC types, rows per token per layer, routing of each sample run alone, samples, meta', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'moescope-capture-'));
  try {
    const model = join(dir, 'model');
    const ck = await writeTinyModel(model);
    const out = join(dir, 'trace');
    const n = 9, seed = 3, L = 3, E = 4, K = 2;
    const r = runCli(['capture', '--model', model, '--data', `shapes:${n}:${seed}`, '--out', out, '--full-probs', '--batch', '4']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readdirSync(out).sort(), ['agg-coact.parquet', 'agg-counts.parquet', 'agg-repeat.parquet', 'agg-token.parquet', 'agg-tokens.parquet', 'meta.json', 'routing.parquet', 'samples.parquet']);
    assert.deepEqual(readdirSync(dir).sort(), ['model', 'trace']); // no temporary folders left

    const rp = sqlPath(join(out, 'routing.parquet')), sp = sqlPath(join(out, 'samples.parquet'));
    assert.deepEqual(await query(`SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM ${rp})`), [
      ['sample', 'INTEGER'], ['pos', 'INTEGER'], ['modality', 'VARCHAR'], ['token', 'INTEGER'], ['layer', 'SMALLINT'],
      ['expert', 'SMALLINT[]'], ['gate', 'FLOAT[]'], ['prob', 'FLOAT[]'],
    ]);
    assert.deepEqual(await query(`SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM ${sp})`), [
      ['sample', 'INTEGER'], ['text', 'VARCHAR'], ['images', 'BLOB[]'], ['source', 'VARCHAR'],
    ]);

    // expected tokens, counted from the samples' words and images (not from the encoder)
    const samples = Array.from({ length: n }, (_, i) => shapesSample(seed, i));
    const want = { text: 0, image: 0, special: 0 };
    for (const s of samples) {
      want.special += 2;
      for (const p of s.parts) {
        if ('text' in p) want.text += WordTokenizer.split(p.text).length;
        else want.image += (16 / 8) ** 2;
      }
    }
    const meta = parseTraceMeta(JSON.parse(readFileSync(join(out, 'meta.json'), 'utf8')), 'meta.json');
    assert.deepEqual(meta.tokens, { image: want.image, special: want.special, text: want.text });
    assert.equal(meta.num_layers, L);
    assert.equal(meta.num_experts, E);
    assert.equal(meta.top_k, K);
    assert.equal(meta.router_scoring, 'softmax');
    assert.equal(meta.data, `shapes:${n}:${seed}`);
    assert.equal(meta.model?.path, model);
    assert.equal((meta.model?.config as { hidden_size: number }).hidden_size, 16);
    const counts = await query(`SELECT modality, count(*)::INTEGER FROM ${rp} GROUP BY ALL ORDER BY 1`);
    assert.deepEqual(counts, [['image', want.image * L], ['special', want.special * L], ['text', want.text * L]]);

    // each sample run alone through the model gives the trace's rows (checks the batch layout)
    const rows = (await query(`SELECT sample, pos, layer, modality, token, expert, gate, prob FROM ${rp} ORDER BY sample, layer, pos`)) as [number, number, number, string, number, number[], number[], number[]][];
    let i = 0;
    for (let b = 0; b < n; b++) {
      const seq = encodeSample(samples[b], ck.tokenizer, ck.config);
      const res = forwardInference(ck, [seq], { probs: true });
      for (let l = 0; l < L; l++) {
        for (let t = 0; t < seq.T; t++, i++) {
          const [sample, pos, layer, modality, token, expert, gate, prob] = rows[i];
          assert.deepEqual([sample, pos, layer], [b, t, l]);
          assert.equal(modality, ['special', 'text', 'image'][seq.modality[t]]);
          assert.equal(token, seq.token[t]);
          assert.deepEqual(expert, [...res.layers[l].experts.subarray(t * K, t * K + K)], `sample ${b} layer ${l} pos ${t}: probs ${prob} alone ${res.layers[l].probs!.subarray(t * E, t * E + E)}`);
          // the forward pass may round differently in a batch than alone (row blocking), by an ulp or so
          const alone = res.layers[l].gates.subarray(t * K, t * K + K);
          gate.forEach((g, k) => assert.ok(Math.abs(g - alone[k]) < 1e-5, `gate ${g} vs ${alone[k]}`));
          // router distribution: sums to 1; experts are its top-k, descending; gates are their probs (norm_topk_prob false)
          assert.equal(prob.length, E);
          assert.ok(Math.abs(prob.reduce((a, v) => a + v, 0) - 1) < 1e-5);
          const order = [...prob.keys()].sort((x, y) => prob[y] - prob[x] || x - y);
          assert.deepEqual(expert, order.slice(0, K));
          assert.deepEqual(gate, expert.map((e) => prob[e]));
        }
      }
    }
    assert.equal(i, rows.length);
    const distinctTop1 = await query(`SELECT count(DISTINCT expert[1])::INTEGER FROM ${rp}`);
    assert.ok((distinctTop1[0][0] as number) >= 2, 'routing uses more than one expert');

    const srows = (await query(`SELECT sample, text, images, source FROM ${sp} ORDER BY sample`)) as [number, string, Uint8Array[], string][];
    assert.equal(srows.length, n);
    srows.forEach(([sample, text, images, source], b) => {
      assert.equal(sample, b);
      assert.equal(text, sampleText(samples[b]));
      assert.equal(source, `shapes:seed=${seed}:index=${b}`);
      assert.equal(images.length, samples[b].parts.filter((p) => 'image' in p).length);
      for (const png of images) {
        const img = decodePngRgb(png, 'trace image');
        assert.deepEqual([img.width, img.height], [16, 16]); // the image as fed: 32x32 resized to the model's 16
      }
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('capture is deterministic: the same data gives identical routing.parquet and samples.parquet; other batch sizes the same routing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'moescope-capture-det-'));
  try {
    const model = join(dir, 'model');
    await writeTinyModel(model);
    const outs = [['a', '5', '2'], ['b', '5', '1'], ['c', '2', '2']].map(([name, batch, threads]) => {
      const out = join(dir, name);
      const r = runCli(['capture', '--model', model, '--data', 'shapes:7:9', '--out', out, '--batch', batch, '--threads', threads]);
      assert.equal(r.code, 0, r.stderr);
      return out;
    });
    for (const f of ['routing.parquet', 'samples.parquet']) {
      const bytes = outs.map((o) => readFileSync(join(o, f)));
      assert.ok(bytes[0].equals(bytes[1]), `${f}: same run twice (2 worker threads, then inline)`);
    }
    assert.ok(readFileSync(join(outs[0], 'samples.parquet')).equals(readFileSync(join(outs[2], 'samples.parquet'))));
    // batch 5 vs 2: the same rows, the same experts; gates equal up to float rounding
    const [a, c] = [outs[0], outs[2]].map((o) => sqlPath(join(o, 'routing.parquet')));
    const cmp = await query(`
      SELECT count(*)::INTEGER, count(*) FILTER (a.expert = c.expert AND a.modality = c.modality AND a.token = c.token)::INTEGER,
             max(list_max(list_transform(list_zip(a.gate, c.gate), z -> abs(z[1] - z[2]))))
      FROM ${a} a JOIN ${c} c USING (sample, pos, layer)`);
    const total = await query(`SELECT count(*)::INTEGER FROM ${a}`);
    assert.equal(cmp[0][0], total[0][0]);
    assert.equal(cmp[0][1], total[0][0]);
    assert.ok((cmp[0][2] as number) < 1e-5);
    // and a different seed gives different routing
    const other = join(dir, 'd');
    assert.equal(runCli(['capture', '--model', model, '--data', 'shapes:7:10', '--out', other]).code, 0);
    assert.ok(!readFileSync(join(other, 'routing.parquet')).equals(readFileSync(join(outs[0], 'routing.parquet'))));
    const noProb = await query(`SELECT count(*) FROM (DESCRIBE SELECT * FROM ${sqlPath(join(outs[0], 'routing.parquet'))}) WHERE column_name = 'prob'`);
    assert.equal(Number(noProb[0][0]), 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('capture from JSONL: images resized to the model size and stored as fed; sources name file:line', async () => {
  const { writeFileSync, mkdirSync } = await import('node:fs');
  const { writeTestPng } = await import('../data/png-writer.js');
  const dir = mkdtempSync(join(tmpdir(), 'moescope-capture-jsonl-'));
  try {
    const model = join(dir, 'model');
    await writeTinyModel(model);
    mkdirSync(join(dir, 'data', 'img'), { recursive: true });
    // 8x8 RGBA, left half red, right half blue; the tiny model wants 16x16
    const px: number[] = [];
    for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) px.push(...(x < 4 ? [255, 0, 0, 128] : [0, 0, 255, 255]));
    writeFileSync(join(dir, 'data', 'img', 'rb.png'), writeTestPng({ width: 8, height: 8, colorType: 6, depth: 8, samples: px }));
    const f = join(dir, 'data', 'set.jsonl');
    writeFileSync(f, [
      JSON.stringify({ text: 'a red square left of a blue square', image: 'img/rb.png' }),
      '',
      JSON.stringify({ parts: [{ text: 'two:' }, { image: 'img/rb.png' }, { image: 'img/rb.png' }, { text: 'zebra' }] }),
    ].join('\n'));
    const out = join(dir, 'trace');
    const r = runCli(['capture', '--model', model, '--data', f, '--out', out], dir);
    assert.equal(r.code, 0, r.stderr);
    const sp = sqlPath(join(out, 'samples.parquet')), rp = sqlPath(join(out, 'routing.parquet'));
    const srows = (await query(`SELECT sample, text, images, source FROM ${sp} ORDER BY sample`)) as [number, string, Uint8Array[], string][];
    assert.deepEqual(srows.map((s) => [s[0], s[1], s[2].length, s[3]]), [
      [0, 'a red square left of a blue square', 1, `${f}:1`],
      [1, 'two: zebra', 2, `${f}:3`],
    ]);
    const img = decodePngRgb(srows[0][2][0], 'stored');
    assert.deepEqual([img.width, img.height], [16, 16]);
    assert.deepEqual([...img.data.subarray(0, 3)], [255, 0, 0]); // top left stays red (alpha dropped)
    assert.deepEqual([...img.data.subarray(15 * 3, 16 * 3)], [0, 0, 255]); // top right blue
    // 'zebra' is not in the vocabulary: <unk> (id 3), still a text token
    const unk = await query(`SELECT count(*)::INTEGER FROM ${rp} WHERE sample = 1 AND modality = 'text' AND token = 3 AND layer = 0`);
    assert.equal(unk[0][0], 1);
    const meta = JSON.parse(readFileSync(join(out, 'meta.json'), 'utf8'));
    assert.equal(meta.data, f);
    // sample 0: 8 words; sample 1: 'two', ':', 'zebra'; 4 patches per 16x16 image
    assert.deepEqual(meta.tokens, { image: 3 * 4, special: 4, text: 8 + 3 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
