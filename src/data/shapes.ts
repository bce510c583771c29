import { Rng, deriveSeed } from '../model/rng.js';
import type { Part, RGBImage, Sample } from './sample.js';

/**
 * The `shapes` world (SPEC §1, Training): small RGB pictures of 1-3 coloured shapes with captions
 * that describe them ("a small red circle left of a blue square"), mixed with text-only sentences
 * about shapes and colours, so that the language model has text to learn and text and image tokens
 * are of similar number overall (32x32 images in 8x8 patches = 16 image tokens; a caption is
 * ~6-25 words; ~20% of samples are text only).
 *
 * Sample `index` of seed `seed` depends only on (seed, index): its generator is seeded with
 * deriveSeed(seed, 'shapes', index). Seeds: training uses seeds below SHAPES_TRAIN_SEED_LIMIT,
 * evaluation (the `shapes` data spec, the demo) uses SHAPES_EVAL_SEED, so they never overlap.
 * Only + - * / and comparisons are used for drawing, so images are identical on every platform.
 */

export const SHAPES_IMAGE_SIZE = 32;
export const SHAPES_TRAIN_SEED_LIMIT = 1_000_000; // training seeds are 0 .. 999_999
export const SHAPES_EVAL_SEED = 1_000_003; // default seed of the `shapes` data spec
export const SHAPES_DEFAULT_SAMPLES = 256; // `shapes` without N

const COLOURS: Record<string, [number, number, number]> = {
  red: [220, 40, 40],
  green: [40, 180, 60],
  blue: [50, 90, 230],
  yellow: [235, 220, 50],
  purple: [150, 60, 200],
  orange: [245, 140, 30],
  white: [240, 240, 240],
};
/** Colour and shape names the captions use: the words whose prediction needs the image. */
export const COLOUR_NAMES: readonly string[] = Object.keys(COLOURS);
export const SHAPE_NAMES = ['circle', 'square', 'triangle', 'diamond'] as const;
type ShapeName = (typeof SHAPE_NAMES)[number];
const SIZES = ['small', 'large'] as const;
type Relation = 'left of' | 'right of' | 'above' | 'below';
const INVERSE: Record<Relation, Relation> = { 'left of': 'right of', 'right of': 'left of', above: 'below', below: 'above' };
const RELATIONS = Object.keys(INVERSE) as Relation[];
const CORNERS: Record<ShapeName, string> = { circle: 'no', square: 'four', triangle: 'three', diamond: 'four' };
const MIXES: [string, string, string][] = [['red', 'yellow', 'orange'], ['blue', 'yellow', 'green'], ['red', 'blue', 'purple']];
const NUMBER_WORDS = ['zero', 'one', 'two', 'three', 'four'];

/** Every word the shapes world can write, in a fixed order (the bundled tokenizer's vocabulary after the specials). */
export function shapesVocabulary(): string[] {
  const words = [
    '.', ',', ':',
    ...COLOUR_NAMES, ...SHAPE_NAMES, ...SIZES,
    'a', 'an', 'the', 'and', 'of', 'is', 'are', 'there', 'left', 'right', 'above', 'below',
    'at', 'on', 'in', 'top', 'bottom', 'middle',
    'this', 'image', 'shows', 'picture', 'here', 'draw',
    'make', 'has', 'no', 'corners', 'if', 'then', 'shapes', 'bigger', 'smaller', 'than',
    'two', 'three', 'four',
  ];
  return [...new Set(words)];
}

interface Shape {
  kind: ShapeName;
  colour: string;
  size: (typeof SIZES)[number];
  cx: number; // centre, pixels
  cy: number;
  r: number; // half extent, pixels
}

/** Is (x, y) inside the shape? Triangles point up; squares are drawn slightly smaller to look their size. */
function inside(s: Shape, x: number, y: number): boolean {
  const dx = x - s.cx, dy = y - s.cy;
  switch (s.kind) {
    case 'circle':
      return dx * dx + dy * dy <= s.r * s.r;
    case 'square':
      return Math.abs(dx) <= s.r * 0.85 && Math.abs(dy) <= s.r * 0.85;
    case 'diamond':
      return Math.abs(dx) + Math.abs(dy) <= s.r;
    case 'triangle':
      return dy >= -s.r && dy <= s.r && Math.abs(dx) <= (dy + s.r) / 2;
  }
}

/** Draw shapes over a noisy dark background, each pixel's coverage from a 4x4 grid of subsamples. */
function drawScene(rng: Rng, shapes: Shape[], size: number): RGBImage {
  const data = new Uint8Array(size * size * 3);
  const bg = 10 + rng.int(40);
  for (let i = 0; i < size * size; i++) {
    const v = bg + rng.int(9) - 4;
    data[i * 3] = data[i * 3 + 1] = data[i * 3 + 2] = v;
  }
  for (const s of shapes) {
    const base = COLOURS[s.colour];
    const col = base.map((c) => Math.min(255, Math.max(0, c + rng.int(31) - 15)));
    const x0 = Math.max(0, Math.floor(s.cx - s.r - 1)), x1 = Math.min(size - 1, Math.ceil(s.cx + s.r + 1));
    const y0 = Math.max(0, Math.floor(s.cy - s.r - 1)), y1 = Math.min(size - 1, Math.ceil(s.cy + s.r + 1));
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) {
        let hits = 0;
        for (let sy = 0; sy < 4; sy++) for (let sx = 0; sx < 4; sx++) if (inside(s, x + (sx + 0.5) / 4, y + (sy + 0.5) / 4)) hits++;
        if (hits === 0) continue;
        const a = hits / 16;
        const o = (y * size + x) * 3;
        for (let c = 0; c < 3; c++) data[o + c] = Math.round(data[o + c] * (1 - a) + col[c] * a);
      }
    }
  }
  return { width: size, height: size, data };
}

/** Where `a` is relative to `b`, along the axis on which they are further apart (y grows downwards). */
function relation(a: Shape, b: Shape): Relation {
  const dx = a.cx - b.cx, dy = a.cy - b.cy;
  if (Math.abs(dx) >= Math.abs(dy)) return dx < 0 ? 'left of' : 'right of';
  return dy < 0 ? 'above' : 'below';
}

/** Place n shapes with disjoint bounding boxes and an unambiguous relation between every pair. */
function placeShapes(rng: Rng, n: number, size: number): Shape[] {
  for (;;) {
    const shapes: Shape[] = [];
    let ok = true;
    for (let i = 0; i < n && ok; i++) {
      // with three shapes at most one is large, so that they fit
      const large = rng.next() < (n === 3 && shapes.some((s) => s.size === 'large') ? 0 : 0.4);
      const r = large ? 7 + rng.int(2) : 3 + rng.int(2);
      const kind = rng.pick(SHAPE_NAMES);
      const colour = rng.pick(COLOUR_NAMES);
      let placed = false;
      for (let tries = 0; tries < 40 && !placed; tries++) {
        const cx = r + 1 + rng.int(size - 2 * r - 2) + 0.5;
        const cy = r + 1 + rng.int(size - 2 * r - 2) + 0.5;
        const s: Shape = { kind, colour, size: large ? 'large' : 'small', cx, cy, r };
        placed = shapes.every((o) => {
          const dx = Math.abs(o.cx - cx), dy = Math.abs(o.cy - cy);
          const apart = dx > o.r + r + 1 || dy > o.r + r + 1;
          const clear = Math.max(dx, dy) >= 1.5 * Math.min(dx, dy) + 2;
          return apart && clear;
        });
        if (placed) shapes.push(s);
      }
      ok = placed;
    }
    if (ok) return shapes;
  }
}

function region(s: Shape, size: number): string {
  const third = (v: number) => (v < size / 3 ? 0 : v < (2 * size) / 3 ? 1 : 2);
  const row = ['top', 'middle', 'bottom'][third(s.cy)];
  const col = ['left', 'middle', 'right'][third(s.cx)];
  if (row === 'middle' && col === 'middle') return 'in the middle';
  if (row === 'middle') return `on the ${col}`;
  if (col === 'middle') return `at the ${row}`;
  return `at the ${row} ${col}`;
}

function withArticle(words: string): string {
  return (/^[aeiou]/.test(words) ? 'an ' : 'a ') + words;
}

function describe(s: Shape, rng: Rng): string {
  // the size word is sometimes left out, as people do
  return withArticle(rng.next() < 0.7 ? `${s.size} ${s.colour} ${s.kind}` : `${s.colour} ${s.kind}`);
}

function caption(shapes: Shape[], rng: Rng, size: number): string {
  const [a, b, c] = shapes;
  if (shapes.length === 1) return `${describe(a, rng)} ${region(a, size)}`;
  let text = `${describe(a, rng)} ${relation(a, b)} ${describe(b, rng)}`;
  if (c) text += ` , and ${describe(c, rng)} ${relation(c, b)} the ${b.colour} ${b.kind}`;
  return text;
}

function imageSample(rng: Rng): Part[] {
  const size = SHAPES_IMAGE_SIZE;
  const u = rng.next();
  const n = u < 0.3 ? 1 : u < 0.75 ? 2 : 3;
  const shapes = placeShapes(rng, n, size);
  const image = drawScene(rng, shapes, size);
  const text = caption(shapes, rng, size);
  // most captions follow their image; some come first, as a request
  const v = rng.next();
  if (v < 0.15) return [{ text: `draw ${text} :` }, { image }];
  if (v < 0.25) return [{ text: `here is ${text} :` }, { image }];
  const prefix = rng.pick(['', '', 'this image shows ', 'a picture of ', 'there is ']);
  return [{ image }, { text: `${prefix}${text} .` }];
}

function randomShape(rng: Rng, size?: (typeof SIZES)[number]): { kind: ShapeName; colour: string; size: string } {
  return { kind: rng.pick(SHAPE_NAMES), colour: rng.pick(COLOUR_NAMES), size: size ?? rng.pick(SIZES) };
}

function textSentence(rng: Rng): string {
  switch (rng.int(6)) {
    case 0: {
      const [x, y, z] = rng.pick(MIXES);
      return rng.next() < 0.5 ? `${x} and ${y} make ${z} .` : `${y} and ${x} make ${z} .`;
    }
    case 1: {
      const k = rng.pick(SHAPE_NAMES);
      return `a ${k} has ${CORNERS[k]} corners .`;
    }
    case 2: {
      const a = randomShape(rng), b = randomShape(rng);
      const rel = rng.pick(RELATIONS);
      return `if the ${a.colour} ${a.kind} is ${rel} the ${b.colour} ${b.kind} , then the ${b.colour} ${b.kind} is ${INVERSE[rel]} the ${a.colour} ${a.kind} .`;
    }
    case 3: {
      const n = 2 + rng.int(2);
      const list = Array.from({ length: n }, () => randomShape(rng)).map((s) => `a ${s.size} ${s.colour} ${s.kind}`);
      return `there are ${NUMBER_WORDS[n]} shapes : ${list.slice(0, -1).join(' , ')} and ${list[n - 1]} .`;
    }
    case 4: {
      const a = randomShape(rng, 'large'), b = randomShape(rng, 'small');
      return rng.next() < 0.5
        ? `the large ${a.colour} ${a.kind} is bigger than the small ${b.colour} ${b.kind} .`
        : `the small ${b.colour} ${b.kind} is smaller than the large ${a.colour} ${a.kind} .`;
    }
    default: {
      const a = randomShape(rng);
      return `the ${a.size} ${a.kind} is ${a.colour} .`;
    }
  }
}

/** Share of samples that are text only (tuned so that text and image tokens are about equal). */
export const SHAPES_TEXT_ONLY_SHARE = 0.2;

/** Sample `index` of the shapes world with seed `seed`. */
export function shapesSample(seed: number, index: number): Sample {
  const rng = new Rng(deriveSeed(seed, 'shapes', index));
  const source = `shapes:seed=${seed}:index=${index}`;
  if (rng.next() < SHAPES_TEXT_ONLY_SHARE) {
    const n = 1 + rng.int(2);
    const text = Array.from({ length: n }, () => textSentence(rng)).join(' ');
    return { parts: [{ text }], source };
  }
  return { parts: imageSample(rng), source };
}
