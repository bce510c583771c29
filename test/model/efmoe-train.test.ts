/**
 * Training loss and full backward of src/model/efmoe.ts: against PyTorch autograd (fixture from
 * scripts/make-model-fixture.py) and against central finite differences of the TypeScript loss itself.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createTrainState, forwardTrain, backwardTrain, forwardInference } from '../../src/model/efmoe.js';
import { createParams } from '../../src/model/params.js';
import { Rng } from '../../src/model/rng.js';
import { loadFixture, relMaxErr } from './fixture-util.js';

for (const name of ['tiny-k2', 'tiny-k1', 'tiny-plain']) {
  test(`loss parts and the gradient of every parameter match PyTorch autograd (${name})`, () => {
    const fx = loadFixture(name);
    const state = createTrainState(fx.model.config, 16); // smaller than the batch: buffers must grow
    const r = forwardTrain(fx.model, fx.seqs, state);
    const ex = (k: string) => fx.expected.get(k)!.data[0];
    assert.equal(r.targets, ex('targets'));
    for (const [k, v] of [['loss', r.loss], ['ce', r.ce], ['aux', r.aux], ['z', r.z], ['aux_raw', r.auxRaw], ['z_raw', r.zRaw]] as const) {
      assert.ok(Math.abs(v - ex(k)) <= 1e-5 * Math.abs(ex(k)) + 1e-6, `${k}: ${v} vs ${ex(k)}`);
    }
    assert.ok(Math.abs(r.loss - (r.ce + r.aux + r.z)) < 1e-9);
    const grads = createParams(fx.model.config);
    backwardTrain(fx.model, fx.seqs, state, grads);
    for (const [tensor, { view }] of grads.byName) {
      const want = fx.expected.get('grad.' + tensor)!.data;
      // the fixture has every expert serve a target row: only q/k_norm without qk_norm have no gradient
      // (then ours must be zero too: relMaxErr is absolute when the reference is all zero)
      const unused = !fx.model.config.qk_norm && /[qk]_norm/.test(tensor);
      assert.equal(want.some((x) => x !== 0), !unused, `${tensor}: the fixture gradient is ${unused ? '' : 'not '}all zero`);
      const err = relMaxErr(view, want);
      assert.ok(err < 1e-4, `${tensor}: relative error ${err}`);
    }
    // backward accumulates: a second call doubles the gradient
    const once = grads.flat.slice();
    backwardTrain(fx.model, fx.seqs, state, grads);
    assert.ok(relMaxErr(grads.flat, once.map((x) => 2 * x)) < 1e-6);
  });
}

/**
 * Central differences of the float32 loss at one element of each parameter tensor (the element with
 * the largest analytic gradient, so the signal stands above float32 noise), with the routing checked
 * unchanged by the nudge (top-k is piecewise constant).
 */
for (const name of ['tiny-k2', 'tiny-k1', 'tiny-plain']) {
  test(`whole-model gradient agrees with finite differences (${name})`, () => {
    const fx = loadFixture(name);
    const { model, seqs } = fx;
    const state = createTrainState(model.config, 64);
    forwardTrain(model, seqs, state);
    const grads = createParams(model.config);
    backwardTrain(model, seqs, state, grads);
    const routing = (r: ReturnType<typeof forwardInference>) => r.layers.map((l) => [...l.experts].join()).join('|');
    const base = routing(forwardInference(model, seqs));
    const lossAt = (i: number, x: number) => {
      const old = model.params.flat[i];
      model.params.flat[i] = x;
      const l = forwardTrain(model, seqs, state).loss;
      const same = routing(forwardInference(model, seqs)) === base;
      model.params.flat[i] = old;
      return { l, same };
    };
    const rng = new Rng(7);
    let checked = 0;
    let worst = 0;
    for (const [tensor, { view }] of model.params.byName) {
      const offset = view.byteOffset / 4 - model.params.flat.byteOffset / 4;
      const g = grads.byName.get(tensor)!.view;
      // the largest gradient in the tensor, and one random element (which may be tiny: then only an absolute check)
      let big = 0;
      for (let j = 1; j < g.length; j++) if (Math.abs(g[j]) > Math.abs(g[big])) big = j;
      for (const j of [big, rng.int(g.length)]) {
        const i = offset + j;
        const x = model.params.flat[i];
        const h = 1e-2 * Math.max(1, Math.abs(x)) ;
        const plus = lossAt(i, Math.fround(x + h)), minus = lossAt(i, Math.fround(x - h));
        if (!plus.same || !minus.same) continue; // the nudge changed an expert choice: not differentiable there
        const fd = (plus.l - minus.l) / (Math.fround(x + h) - Math.fround(x - h));
        const an = g[j];
        const err = Math.abs(fd - an) / (Math.abs(an) + 2e-2); // 1% relative, 2e-4 absolute (float32 loss noise / 2h)
        worst = Math.max(worst, err);
        if (process.env.H2_DEBUG && err > 3e-3) console.log(tensor, j, fd, an, err);
        assert.ok(err < 1e-2, `${tensor}[${j}]: finite difference ${fd}, backward ${an}`);
        checked++;
      }
    }
    if (process.env.H2_DEBUG) console.log(name, "checked", checked, "worst", worst);
    assert.ok(checked >= model.params.byName.size, `only ${checked} elements checked`);
  });
}

test('a gradient step along -grad lowers the loss', () => {
  const fx = loadFixture('tiny-k1');
  const { model, seqs } = fx;
  const params = createParams(model.config, model.params.flat.slice());
  const m = { config: model.config, params };
  const state = createTrainState(model.config, 64);
  const before = forwardTrain(m, seqs, state).loss;
  const grads = createParams(model.config);
  backwardTrain(m, seqs, state, grads);
  for (let i = 0; i < params.flat.length; i++) params.flat[i] -= 1e-3 * grads.flat[i];
  const after = forwardTrain(m, seqs, state).loss;
  assert.ok(after < before, `${after} >= ${before}`);
});

test('training forward and backward are deterministic', () => {
  const fx = loadFixture('tiny-k2');
  const run = () => {
    const state = createTrainState(fx.model.config, 64);
    const r = forwardTrain(fx.model, fx.seqs, state);
    const grads = createParams(fx.model.config);
    backwardTrain(fx.model, fx.seqs, state, grads);
    return { r, g: grads.flat };
  };
  const a = run(), b = run();
  assert.deepEqual(a.r, b.r);
  assert.deepEqual(a.g, b.g);
});
