import test from 'node:test';
import assert from 'node:assert/strict';
import { looksLikeProbs, routeByRule, routeFromScores, sortTopK } from '../../src/import/routing.js';
import { MOD_IMAGE, MOD_SPECIAL, MOD_TEXT, MOD_VIDEO, resolveTokens } from '../../src/import/modality.js';
import { routingFromConfig } from '../../src/import/layers.js';
import { firstNonFinite, parseLayerList } from '../../src/util/limits.js';
import { decodeInts } from '../../src/import/formats/engine-routed.js';
import { expF32, softmaxExps } from '../../src/import/softmax-exps.js';
import { lastRowExps, softmaxTopKRows } from '../../src/import/softmax-topk.js';
import { ImportSink } from '../../src/import/sink.js';
import { InputError } from '../../src/util/errors.js';

function lcg(seed: number) {
  return () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) / (1 << 24);
}

test('routeFromScores: softmax/sigmoid top-k matches a plain sort (descending, ties to the lower id)', () => {
  const rnd = lcg(3);
  const T = 200, E = 9, K = 3;
  const scores = new Float32Array(T * E);
  // coarse values make ties frequent
  for (let i = 0; i < scores.length; i++) scores[i] = Math.round(rnd() * 6) / 2 - 1.5;
  for (const scoring of ['softmax', 'sigmoid'] as const) {
    for (const norm of [false, true]) {
      const r = routeFromScores(scores, T, E, K, scoring, false, norm, true);
      for (let t = 0; t < T; t++) {
        const row = Array.from(scores.subarray(t * E, t * E + E));
        let p: number[];
        if (scoring === 'sigmoid') p = row.map((x) => 1 / (1 + Math.exp(-x)));
        else {
          const z = row.map((x) => Math.exp(x));
          const s = z.reduce((a, b) => a + b, 0);
          p = z.map((x) => x / s);
        }
        const order = p.map((v, e) => [v, e]).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, K);
        const sumK = order.reduce((s, [v]) => s + v, 0);
        assert.deepEqual(Array.from(r.experts.subarray(t * K, t * K + K)), order.map(([, e]) => e), `row ${t} ${scoring}`);
        order.forEach(([v], j) => assert.ok(Math.abs(r.gates[t * K + j] - (norm ? v / sumK : v)) < 1e-6));
        p.forEach((v, e) => assert.ok(Math.abs(r.probs![t * E + e] - v) < 1e-6));
      }
    }
  }
});

test('routeFromScores: softmax top-k is a plain softmax + sort (exact in float64), also on near-ties; gates within 5e-7', () => {
  const rnd = lcg(11);
  const T = 300, E = 64, K = 8;
  const scores = new Float32Array(T * E);
  for (let t = 0; t < T; t++) {
    for (let e = 0; e < E; e++) {
      // rows fine-grained, coarse (exact ties), one float32 ulp apart, or with distinct logits whose
      // probabilities underflow to the same 0 (ties to the lower id even though the logits differ)
      const x = rnd() * 8 - 4;
      scores[t * E + e] = [x, Math.round(x * 2) / 2, 1 + (e % 4) * 2 ** -23, e === 5 ? 0 : -1000 + x][t % 4];
    }
  }
  for (const norm of [false, true]) {
    for (const wantProbs of [false, true]) {
      const r = routeFromScores(scores, T, E, K, 'softmax', false, norm, wantProbs);
      for (let t = 0; t < T; t++) {
        const row = Array.from(scores.subarray(t * E, t * E + E));
        const max = row.reduce((a, b) => Math.max(a, b), -Infinity);
        const z = row.map((x) => Math.exp(x - max));
        let sum = 0;
        for (const v of z) sum += v;
        const p = z.map((v) => v / sum);
        const order = p.map((v, e) => [v, e]).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, K);
        let sumK = 0;
        for (const [v] of order) sumK += v;
        assert.deepEqual(Array.from(r.experts.subarray(t * K, t * K + K)), order.map(([, e]) => e), `row ${t}`);
        // float32 exps summed in float64 (softmax-exps.ts): within a few float32 ulps of the exact value
        const near = (got: number, want: number, what: string) => assert.ok(Math.abs(got - want) <= 5e-7 * want + 1e-30, `row ${t} ${what}: ${got} vs ${want}`);
        order.forEach(([v], j) => near(r.gates[t * K + j], norm ? v / sumK : v, `gate ${j}`));
        if (wantProbs) p.forEach((v, e) => near(r.probs![t * E + e], v, `prob ${e}`));
      }
    }
  }
});

test('softmax-topk.wat: the same bits as the JS loop on every kind of row, and it takes the ordinary ones', () => {
  const rnd = lcg(5);
  const normal = () => Math.sqrt(-2 * Math.log(rnd() || 1e-9)) * Math.cos(2 * Math.PI * rnd());
  const kinds: Record<string, () => number> = {
    normal,
    ties: () => Math.round(normal() * 2) / 2,
    zeros: () => [0, -0, 1, -1][Math.floor(rnd() * 4)],
    bf16: () => new Float32Array(new Uint32Array([new Uint32Array(new Float32Array([normal() * 3]).buffer)[0] & 0xffff0000]).buffer)[0],
    wide: () => normal() * 400,
    // logits an ulp apart whose probabilities may round together (the K+1-th decides the tie order)
    ulps: () => 1 + Math.floor(rnd() * 6) * 2 ** -23,
    special: () => { const r = rnd(); return r < 0.01 ? NaN : r < 0.03 ? -Infinity : r < 0.035 ? Infinity : r < 0.05 ? -1e30 : normal(); },
  };
  for (const [kind, draw] of Object.entries(kinds)) {
    for (const [E, K] of [[4, 1], [8, 2], [60, 4], [64, 8], [64, 11], [128, 6], [6, 2], [64, 12], [16, 11], [256, 8], [2048, 11]]) {
      const T = 400;
      const scores = Float32Array.from({ length: T * E }, draw);
      const left: number[] = [];
      const experts = new Int32Array(T * K), gates = new Float32Array(T * K);
      const took = softmaxTopKRows(scores, T, E, K, true, experts, gates, (t) => left.push(t));
      assert.equal(took, E % 4 === 0 && K <= 11, `${kind} E=${E} K=${K}: kernel used`);
      // (past a few hundred draws a row, this generator repeats values: rows of 2048 have ties)
      if (kind === 'normal' && took && E <= 256) assert.equal(left.length, 0, `E=${E} K=${K}: ordinary rows left to JS`);
      for (const norm of [false, true]) {
        // wantProbs keeps routeFromScores on its JS loops: the kernel's rows must match them bit for bit
        const js = routeFromScores(scores, T, E, K, 'softmax', false, norm, true);
        const wasm = routeFromScores(scores, T, E, K, 'softmax', false, norm, false);
        assert.deepEqual(wasm.experts, js.experts, `${kind} E=${E} K=${K} norm=${norm}: experts`);
        assert.deepEqual(new Uint32Array(wasm.gates.buffer), new Uint32Array(js.gates.buffer), `${kind} E=${E} K=${K} norm=${norm}: gate bits`);
      }
    }
  }
});

test('expF32: within 1 float32 ulp of exp (Math.exp rounded) over the softmax range; 0 below -87.3, NaN for NaN', () => {
  const f = new Float32Array(2);
  const bits = new Int32Array(f.buffer);
  const ulps = (a: number, b: number) => {
    f[0] = a;
    f[1] = b;
    return bits[0] - bits[1];
  };
  const rnd = lcg(5);
  let worst = 0;
  for (let i = 0; i < 300_000; i++) {
    // tiny, typical and very negative arguments, and multiples of ln 2 (the reduction's edges)
    const x = Math.fround([-rnd() * 1e-6, -rnd() * 8, -rnd() * 87.3, -Math.round(rnd() * 125) * Math.LN2][i % 4]);
    if (x < Math.fround(-87.3)) continue;
    const d = Math.abs(ulps(expF32(x), Math.exp(x)));
    if (d > worst) worst = d;
    assert.ok(d <= 1, `exp(${x}): ${expF32(x)} vs ${Math.fround(Math.exp(x))}`);
  }
  assert.ok(worst >= 1, 'the sweep reached values where the two differ (the check can fail)');
  assert.ok(Math.fround(expF32(-1.5)) === expF32(-1.5), 'results are float32 values');
  for (const x of [0, -0]) assert.equal(expF32(x), 1);
  for (const x of [-87.4, -100, -1e30, -Infinity]) assert.equal(expF32(Math.fround(x)), 0, `exp(${x})`);
  assert.ok(Number.isNaN(expF32(NaN)));
});

test('softmax-topk.wat: its float32 exps and float64 sum are softmax-exps.ts\'s bit for bit; the sum in four lanes by id mod 4', () => {
  const rnd = lcg(21);
  for (const E of [4, 8, 12, 60, 64, 256]) {
    for (let t = 0; t < 300; t++) {
      const scale = [0.01, 1, 5, 40][t % 4];
      const row = Float32Array.from({ length: E }, () => (rnd() * 2 - 1) * scale);
      const experts = new Int32Array(2), gates = new Float32Array(2);
      const left: number[] = [];
      assert.ok(softmaxTopKRows(row, 1, E, 2, false, experts, gates, (i) => left.push(i)));
      if (left.length) continue; // a tie: the row went to JS and the scratch holds no sum for it
      const got = lastRowExps(E)!;
      let max = -Infinity;
      for (const v of row) max = Math.max(max, v);
      const ex = new Float64Array(E);
      const sum = softmaxExps(row, 0, E, max, ex);
      assert.deepEqual(Array.from(got.ex), Array.from(ex), `E=${E} row ${t}: exps`);
      assert.ok(Object.is(got.sum, sum), `E=${E} row ${t}: sum ${got.sum} vs ${sum}`);
      // the order the definition gives, written out here
      const lanes = [0, 0, 0, 0];
      for (let e = 0; e < E; e++) lanes[e % 4] += expF32(Math.fround(row[e] - max));
      assert.ok(Object.is(sum, lanes[0] + lanes[2] + (lanes[1] + lanes[3])), `E=${E} row ${t}: the sum's order`);
    }
  }
});

test('routing router scores names the first score that is not finite (row, then expert), on every path: kernel, JS fast path, plain loop, rules', () => {
  const rnd = lcg(31);
  const paths: [string, number, number, (sc: Float32Array, T: number) => unknown][] = [
    ['softmax kernel', 64, 8, (sc, T) => routeFromScores(sc, T, 64, 8, 'softmax', false, false, false, 'x')],
    ['softmax JS fast path (E not a multiple of 4)', 6, 2, (sc, T) => routeFromScores(sc, T, 6, 2, 'softmax', false, true, false, 'x')],
    ['softmax plain loop (probabilities wanted)', 16, 4, (sc, T) => routeFromScores(sc, T, 16, 4, 'softmax', false, false, true, 'x')],
    ['sigmoid', 8, 2, (sc, T) => routeFromScores(sc, T, 8, 2, 'sigmoid', false, true, false, 'x')],
    ['rule (groups)', 16, 4, (sc, T) => routeByRule(sc, T, 16, 4, { scoring: 'softmax', normTopk: true, nGroup: 4, topkGroup: 2, groupScore: 'top2sum', scalingFactor: 1 }, null, false, false, 'x')],
  ];
  for (const [name, E, , route] of paths) {
    const T = 50;
    for (let trial = 0; trial < 12; trial++) {
      const sc = Float32Array.from({ length: T * E }, () => rnd() * 6 - 3);
      if (trial === 0) {
        route(sc, T); // all finite: no error
        continue;
      }
      // one to three bad values anywhere; the first in (row, expert) order is the one named
      for (let b = 1 + Math.floor(rnd() * 3); b > 0; b--) sc[Math.floor(rnd() * T * E)] = [NaN, Infinity, -Infinity][Math.floor(rnd() * 3)];
      let first = -1;
      for (let i = 0; i < sc.length; i++) if (!Number.isFinite(sc[i])) { first = i; break; }
      const want = `x: token ${Math.floor(first / E)}: router score ${sc[first]} for expert ${first % E} is not a finite number`;
      assert.throws(() => route(sc, T), (e: Error) => e instanceof InputError && e.message === want, `${name}: ${want}`);
    }
  }
});

test('firstNonFinite: the first NaN or infinity wherever it falls (block edges, tails), else -1', () => {
  const rnd = lcg(9);
  for (const n of [0, 1, 3, 4, 1023, 1024, 1025, 5000]) {
    const a = Float32Array.from({ length: n }, () => rnd() * 200 - 100);
    const d = Float64Array.from(a);
    assert.equal(firstNonFinite(a), -1);
    assert.equal(firstNonFinite(Array.from(d)), -1);
    for (const bad of [NaN, Infinity, -Infinity]) {
      for (const at of [0, n - 1, 1023, 1024, Math.floor(n / 2)].filter((i) => i >= 0 && i < n)) {
        const b = a.slice();
        b[at] = bad;
        if (at + 7 < n) b[at + 7] = NaN; // a later one does not win
        let expected = -1;
        for (let i = 0; i < n; i++) if (!Number.isFinite(b[i])) { expected = i; break; }
        assert.equal(firstNonFinite(b), expected, `n ${n}, ${bad} at ${at}`);
      }
    }
  }
  assert.equal(firstNonFinite([1, -0, 0, 1e308, -1e308]), -1, 'signed zeros and huge finite values are finite');
});

test('routeFromScores on probabilities does not apply softmax again; looksLikeProbs tells them apart', () => {
  const probs = new Float32Array([0.7, 0.2, 0.1, 0.05, 0.05, 0.9]);
  assert.equal(looksLikeProbs(probs, 2, 3, 'softmax'), true);
  const logits = new Float32Array([2.1, -0.3, 0.4, 1, 1, -2]);
  assert.equal(looksLikeProbs(logits, 2, 3, 'softmax'), false);
  assert.equal(looksLikeProbs(new Float32Array([0.2, 0.3, 0.1, 0.1, 0.2, 0.3]), 2, 3, 'softmax'), false, 'rows must sum to 1');
  assert.equal(looksLikeProbs(new Float32Array([0.2, 0.3, 0.1, 0.1, 0.2, 0.3]), 2, 3, 'sigmoid'), true);
  const r = routeFromScores(probs, 2, 3, 1, 'softmax', true, false, false);
  assert.deepEqual(Array.from(r.experts), [0, 2]);
  assert.ok(Math.abs(r.gates[0] - 0.7) < 1e-6 && Math.abs(r.gates[1] - 0.9) < 1e-6);
});

test('sortTopK: orders by weight, ties to the lower id; without weights keeps the slots, gates 1/K; rejects bad ids', () => {
  const ids = new Int32Array([5, 1, 3, 2, 7, 4]);
  const w = new Float32Array([0.1, 0.6, 0.3, 0.25, 0.5, 0.25]);
  const r = sortTopK('x', ids, w, 2, 3, 8);
  assert.deepEqual(Array.from(r.experts), [1, 3, 5, 7, 2, 4]);
  assert.deepEqual(Array.from(r.gates), Array.from(new Float32Array([0.6, 0.3, 0.1, 0.5, 0.25, 0.25])));
  const u = sortTopK('x', ids, null, 2, 3, 8);
  assert.deepEqual(Array.from(u.experts), Array.from(ids));
  assert.ok(u.gates.every((g) => Math.abs(g - 1 / 3) < 1e-7));
  assert.throws(() => sortTopK('f.jsonl:3', ids, null, 2, 3, 7), /f\.jsonl:3: token 1: expert id 7 outside 0\.\.6/);
  assert.throws(() => sortTopK('f', new Int32Array([1, 1]), null, 1, 2, 4), /expert 1 chosen twice/);
  // the expert count unknown (pairwise duplicates), another K (the shared 1/K gates refilled), too few ids
  assert.throws(() => sortTopK('f', new Int32Array([0, 3, 2, 2]), null, 2, 2, undefined), /f: token 1: expert 2 chosen twice/);
  assert.throws(() => sortTopK('f', new Int32Array([0, -1]), null, 1, 2, undefined), /f: token 0: expert id -1 outside 0\.\./);
  const v = sortTopK('x', new Int32Array([0, 1, 2, 3]), null, 2, 2, 4);
  assert.deepEqual(Array.from(v.gates), [0.5, 0.5, 0.5, 0.5]);
  assert.throws(() => sortTopK('f', new Int32Array([0, 1, 2]), null, 2, 2, 4), /f: token 1: expert id undefined outside 0\.\.3/);
});

test('resolveTokens: image token id, special ids, patch index per image, mm_token_type_ids, placeholder expansion', () => {
  const rules = { imageTokenId: 9, imageSpecialIds: new Set([3, 4]), specialIds: new Set([1]) };
  const ids = new Int32Array([1, 20, 3, 9, 9, 9, 4, 3, 9, 9, 4, 21]);
  const r = resolveTokens('w', ids.length, ids, {}, rules);
  const S = MOD_SPECIAL, X = MOD_TEXT, I = MOD_IMAGE;
  assert.deepEqual(Array.from(r.modality), [S, X, S, I, I, I, S, S, I, I, S, X]);
  assert.deepEqual(Array.from(r.token), [1, 20, 3, 0, 1, 2, 4, 3, 0, 1, 4, 21]);
  const mm = resolveTokens('w', 5, new Int32Array([5, 6, 7, 8, 9]), { mmTokenTypeIds: new Int32Array([0, 1, 1, 2, 2]) }, {});
  assert.deepEqual(Array.from(mm.modality), [X, I, I, MOD_VIDEO, MOD_VIDEO]);
  assert.deepEqual(Array.from(mm.token), [5, 0, 1, 0, 1]);
  // two placeholders back to back are two images: patch indices restart
  const ph = resolveTokens('w', 2 + 2 * 3, new Int32Array([1, -200, -200, 2]), {}, { placeholderId: -200, specialIds: new Set([1, 2]) });
  assert.deepEqual(Array.from(ph.modality), [S, I, I, I, I, I, I, S]);
  assert.deepEqual(Array.from(ph.token), [1, 0, 1, 2, 0, 1, 2, 2]);
  assert.throws(() => resolveTokens('f:2', 9, new Int32Array([1, -200, -200, 2]), {}, { placeholderId: -200 }), /f:2: 2 image placeholder\(s\) -200 in 4 ids cannot expand to 9 routed tokens/);
  assert.throws(() => resolveTokens('f:2', 5, new Int32Array([1, 2, 3]), {}, {}), /3 token ids but 5 routed tokens/);
});

test('MoE layers from HF configs: DeepSeek first_k_dense_replace, Qwen mlp_only_layers / decoder_sparse_step, Jamba, all-MoE', () => {
  assert.deepEqual(routingFromConfig({ num_hidden_layers: 6, first_k_dense_replace: 2, moe_layer_freq: 1, n_routed_experts: 16, num_experts_per_tok: 4, scoring_func: 'sigmoid' }, 'c').moeLayers, [2, 3, 4, 5]);
  assert.deepEqual(routingFromConfig({ num_hidden_layers: 6, decoder_sparse_step: 2, mlp_only_layers: [], num_experts: 8 }, 'c').moeLayers, [1, 3, 5]);
  assert.deepEqual(routingFromConfig({ num_hidden_layers: 5, decoder_sparse_step: 1, mlp_only_layers: [0, 2] }, 'c').moeLayers, [1, 3, 4]);
  assert.deepEqual(routingFromConfig({ num_hidden_layers: 8, expert_layer_period: 2, expert_layer_offset: 1 }, 'c').moeLayers, [1, 3, 5, 7]);
  const mx = routingFromConfig({ model_type: 'mixtral', num_hidden_layers: 4, num_local_experts: 8, num_experts_per_tok: 2 }, 'c');
  assert.deepEqual(mx.moeLayers, [0, 1, 2, 3]);
  assert.equal(mx.normTopk, true);
  assert.equal(mx.numExperts, 8);
  const vl = routingFromConfig({ text_config: { num_hidden_layers: 3, num_experts: 4, num_experts_per_tok: 1 } }, 'c');
  assert.equal(vl.numLayers, 3);
  assert.deepEqual(parseLayerList('--moe-layers', '1,3-5'), [1, 3, 4, 5]);
  assert.throws(() => parseLayerList('--moe-layers', '0-999999999999'), /outside/);
});

test('router rules from HF configs: renormalising families, biased/grouped routers, Llama-4 sigmoid, sparsemixer refused', () => {
  const r = (c: Record<string, unknown>) => routingFromConfig(c, 'c').rule!;
  assert.equal(r({ model_type: 'gpt_oss', num_local_experts: 32, num_experts_per_tok: 4 }).normTopk, true, 'gpt-oss: softmax over the top-k logits');
  assert.equal(r({ model_type: 'granitemoe', num_local_experts: 8 }).normTopk, true);
  assert.equal(r({ model_type: 'qwen2_moe', norm_topk_prob: false }).normTopk, false);
  const dbrx = routingFromConfig({ model_type: 'dbrx', n_layers: 4, ffn_config: { moe_num_experts: 16, moe_top_k: 4, moe_normalize_expert_weights: 1 } }, 'c');
  assert.deepEqual([dbrx.numLayers, dbrx.numExperts, dbrx.topK, dbrx.rule!.normTopk], [4, 16, 4, true]);
  const ds = r({ model_type: 'deepseek_v3', n_routed_experts: 256, n_group: 8, topk_group: 4, routed_scaling_factor: 2.5, norm_topk_prob: true });
  assert.deepEqual([ds.scoring, ds.biased, ds.nGroup, ds.topkGroup, ds.groupScore, ds.scalingFactor], ['sigmoid', true, 8, 4, 'top2sum', 2.5]);
  const v2 = r({ model_type: 'deepseek_v2', topk_method: 'group_limited_greedy', n_group: 8, topk_group: 3, routed_scaling_factor: 16, norm_topk_prob: false });
  assert.deepEqual([v2.scoring, v2.biased, v2.groupScore, v2.scalingFactor], ['softmax', false, 'max', 16]);
  const l4 = r({ model_type: 'llama4_text', num_local_experts: 16, num_experts_per_tok: 1 });
  assert.deepEqual([l4.scoring, l4.normTopk], ['sigmoid', false]);
  assert.match(String(r({ model_type: 'phimoe' }).unsupported), /sparsemixer/);
  assert.throws(() => routingFromConfig({ num_hidden_layers: 'x' }, 'c'), /num_hidden_layers: expected an integer/);
});

test('decodeInts: every integer dtype engines write, at odd offsets and with negative values; int64 outside int32 refused', () => {
  // written with Buffer's little-endian writers, one value at a time (not typed-array views)
  const values = [0, 1, -1, 127, -128, 255, 300, -300, 32767, -32768, 65535, 70000, -70000, 2147483647, -2147483648];
  const cases: [string, number, (b: Buffer, v: number, o: number) => void, (v: number) => boolean][] = [
    ['int8', 1, (b, v, o) => b.writeInt8(v, o), (v) => v >= -128 && v <= 127],
    ['uint8', 1, (b, v, o) => b.writeUInt8(v, o), (v) => v >= 0 && v <= 255],
    ['int16', 2, (b, v, o) => b.writeInt16LE(v, o), (v) => v >= -32768 && v <= 32767],
    ['uint16', 2, (b, v, o) => b.writeUInt16LE(v, o), (v) => v >= 0 && v <= 65535],
    ['int32', 4, (b, v, o) => b.writeInt32LE(v, o), () => true],
    ['int64', 8, (b, v, o) => b.writeBigInt64LE(BigInt(v), o), () => true],
  ];
  for (const [dtype, width, write, fits] of cases) {
    for (const n of [0, 1, 3, 7]) {
      const vs = Array.from({ length: n }, (_, i) => values.filter(fits)[(i * 5 + n) % values.filter(fits).length]);
      const b = Buffer.alloc(n * width);
      vs.forEach((v, i) => write(b, v, i * width));
      assert.deepEqual([...decodeInts('f', 'x', b.toString('base64'), dtype)], vs, `${dtype} x${n}`);
    }
  }
  const big = Buffer.alloc(8);
  big.writeBigInt64LE(2n ** 31n);
  assert.throws(() => decodeInts('f', 'x', big.toString('base64'), 'int64'), /does not fit a 32-bit expert id/);
  assert.throws(() => decodeInts('f', 'x', Buffer.alloc(3).toString('base64'), 'int16'), /not a whole number of int16 values/);
  assert.throws(() => decodeInts('f', 'x', '', 'float32'), /not an integer type/);
});

test('ImportSink: a record whose scores disagree on the expert count names where the count came from', () => {
  const dir = '/nonexistent-moescope-sink'; // nothing is written before the first rows
  const fromData = new ImportSink(dir, { fullProbs: false });
  fromData.setNumExperts(64, 'a.safetensors: router_logits.0');
  fromData.setNumExperts(64, 'a.safetensors: router_logits.1');
  // the second record's scores are routed before the first record's rows open the writer
  assert.throws(() => fromData.setNumExperts(32, 'b.safetensors: router_logits.0'), (e: unknown) => e instanceof InputError && e.message === 'b.safetensors: router_logits.0: 32 experts, but 64 in a.safetensors: router_logits.0');
  const given = new ImportSink(dir, { fullProbs: false, numExperts: 8 });
  assert.throws(() => given.setNumExperts(16, 'c.safetensors: router_logits.0'), (e: unknown) => e instanceof InputError && e.message === 'c.safetensors: router_logits.0: 16 experts, but 8 given (--num-experts/--config)');
});
