import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SHAPES_EVAL_SEED, SHAPES_TRAIN_SEED_LIMIT, shapesSample, shapesVocabulary } from '../../src/data/shapes.js';
import { parseDataSpec, formatDataSpec } from '../../src/data/spec.js';
import { openDataSource } from '../../src/data/source.js';
import { WordTokenizer } from '../../src/model/tokenizer.js';
import type { RGBImage, Sample } from '../../src/data/sample.js';

function bytesOf(s: Sample): string {
  return JSON.stringify(s.parts.map((p) => ('text' in p ? p.text : [p.image.width, p.image.height, Buffer.from(p.image.data).toString('base64')])));
}

test('shapes: same seed and index give identical bytes; different seeds and indices differ', () => {
  for (const i of [0, 1, 17, 999]) assert.equal(bytesOf(shapesSample(5, i)), bytesOf(shapesSample(5, i)));
  const a = Array.from({ length: 20 }, (_, i) => bytesOf(shapesSample(5, i)));
  const b = Array.from({ length: 20 }, (_, i) => bytesOf(shapesSample(6, i)));
  assert.equal(a.filter((x, i) => x === b[i]).length, 0);
  assert.equal(new Set(a).size, 20);
});

test('shapes: sample i does not depend on how many samples are drawn, nor on draw order', async () => {
  const src = await openDataSource('shapes:12:5');
  const drawn: string[] = [];
  for await (const s of src.samples()) drawn.push(bytesOf(s));
  assert.equal(drawn.length, 12);
  assert.equal(drawn[11], bytesOf(shapesSample(5, 11)));
  const backwards = [11, 10, 3].map((i) => bytesOf(shapesSample(5, i)));
  assert.deepEqual(backwards, [drawn[11], drawn[10], drawn[3]]);
  assert.equal(shapesSample(5, 11).source, 'shapes:seed=5:index=11');
});

test('shapes: every word is in shapesVocabulary(); text and image tokens are of similar number', () => {
  const vocab = new Set(shapesVocabulary());
  assert.equal(vocab.size, shapesVocabulary().length);
  for (const seed of [SHAPES_EVAL_SEED, 3]) {
    let text = 0, image = 0, textOnly = 0, imageSamples = 0;
    const used = new Set<string>();
    for (let i = 0; i < 1500; i++) {
      const s = shapesSample(seed, i);
      let hasImage = false;
      for (const p of s.parts) {
        if ('image' in p) {
          assert.equal(p.image.width, 32);
          assert.equal(p.image.data.length, 32 * 32 * 3);
          image += (32 / 8) ** 2; // the bundled model's patches per image
          hasImage = true;
        } else {
          const words = WordTokenizer.split(p.text);
          for (const w of words) {
            assert.ok(vocab.has(w), `"${w}" in "${p.text}" is not in the vocabulary`);
            used.add(w);
          }
          text += words.length;
        }
      }
      if (hasImage) imageSamples++;
      else textOnly++;
    }
    const ratio = text / image;
    assert.ok(ratio > 0.8 && ratio < 1.25, `text/image token ratio ${ratio.toFixed(2)} for seed ${seed}`);
    assert.ok(textOnly > 150 && imageSamples > 900, `${textOnly} text-only, ${imageSamples} with images`);
    // the vocabulary has no (or almost no) words that are never produced
    assert.ok(used.size >= vocab.size - 1, `unused words: ${[...vocab].filter((w) => !used.has(w)).join(' ')}`);
  }
});

const PALETTE: Record<string, number[]> = {
  red: [220, 40, 40], green: [40, 180, 60], blue: [50, 90, 230], yellow: [235, 220, 50],
  purple: [150, 60, 200], orange: [245, 140, 30], white: [240, 240, 240],
};

/** Pixels clearly brighter than the background (<= ~55), their mean colour and centroid. */
function foreground(img: RGBImage) {
  let n = 0, cx = 0, cy = 0;
  const sum = [0, 0, 0];
  for (let y = 0; y < img.height; y++) for (let x = 0; x < img.width; x++) {
    const o = (y * img.width + x) * 3;
    const px = [img.data[o], img.data[o + 1], img.data[o + 2]];
    if (Math.max(...px) < 120) continue; // edges blend into the background; use solid pixels
    n++;
    cx += x + 0.5;
    cy += y + 0.5;
    px.forEach((v, c) => (sum[c] += v));
  }
  return { n, cx: cx / n, cy: cy / n, mean: sum.map((v) => v / n) };
}

test('shapes: one-shape captions name the colour and the region that the image shows', () => {
  let checked = 0;
  for (let i = 0; checked < 60 && i < 2000; i++) {
    const s = shapesSample(SHAPES_EVAL_SEED, i);
    const img = s.parts.find((p) => 'image' in p);
    const text = s.parts.map((p) => ('text' in p ? p.text : '')).join(' ');
    if (!img || !('image' in img) || / of | above | below /.test(text)) continue; // one shape: no relation words
    const fg = foreground(img.image);
    assert.ok(fg.n > 4, text);
    const nearest = Object.entries(PALETTE).sort(([, a], [, b]) => dist(a, fg.mean) - dist(b, fg.mean))[0][0];
    assert.ok(text.includes(` ${nearest} `), `"${text}": pixels look ${nearest} (${fg.mean.map(Math.round)})`);
    const third = (v: number) => ['top', 'middle', 'bottom'][Math.min(2, Math.floor(v / (32 / 3)))];
    const row = third(fg.cy), col = ['left', 'middle', 'right'][['top', 'middle', 'bottom'].indexOf(third(fg.cx))];
    const want = row === 'middle' && col === 'middle' ? 'in the middle' : row === 'middle' ? `on the ${col}` : col === 'middle' ? `at the ${row}` : `at the ${row} ${col}`;
    assert.ok(text.includes(want), `"${text}": centroid (${fg.cx.toFixed(1)}, ${fg.cy.toFixed(1)}) is ${want}`);
    checked++;
  }
  assert.equal(checked, 60);
});

function dist(a: number[], b: number[]): number {
  return a.reduce((s, v, i) => s + (v - b[i]) ** 2, 0);
}

test('data specs: shapes, shapes:N, shapes:N:SEED, .jsonl; bad ones are input errors', () => {
  assert.deepEqual(parseDataSpec('shapes'), { kind: 'shapes', samples: 256, seed: SHAPES_EVAL_SEED });
  assert.deepEqual(parseDataSpec('shapes:10'), { kind: 'shapes', samples: 10, seed: SHAPES_EVAL_SEED });
  assert.deepEqual(parseDataSpec('shapes:10:42'), { kind: 'shapes', samples: 10, seed: 42 });
  assert.equal(formatDataSpec(parseDataSpec('shapes:10')), `shapes:10:${SHAPES_EVAL_SEED}`);
  assert.deepEqual(parseDataSpec('dir/x.jsonl'), { kind: 'jsonl', path: 'dir/x.jsonl' });
  assert.ok(SHAPES_EVAL_SEED >= SHAPES_TRAIN_SEED_LIMIT);
  for (const bad of ['shape', 'shapes:', 'shapes:0', 'shapes:-1', 'shapes:1.5', 'shapes:3:x', 'shapes:3:4:5', 'data.json', 'shapes:3:99999999999']) {
    assert.throws(() => parseDataSpec(bad), (e: Error) => e.name === 'InputError' && e.message.startsWith(`--data ${bad}: `), bad);
  }
});
