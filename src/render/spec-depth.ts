import { figureConfig } from './spec.js';
import { depthLines, type Vl } from './spec-marks.js';

/**
 * Per-layer metrics in SPEC §3 JSON names, as `analyze --json` gives them (any may be null or
 * missing when undefined for the trace, e.g. `jsd` with one group, `entropy_mean` without `prob`).
 */
export interface DepthMetrics {
  layer: number;
  S?: number | null;
  S0?: number | null;
  mi?: number | null;
  mi_norm?: number | null;
  jsd?: number | null;
  router?: { gate_top1_mean?: number | null; margin_mean?: number | null; entropy_mean?: number | null; near_uniform?: boolean | null } | null;
  repeat_rate?: number | null;
  repeat_rate_chance?: number | null;
  /** SPEC §3: the value and its chance level (an object), or the value alone with `token_specialisation_chance` beside it. */
  token_specialisation?: { value?: number | null; mean?: number | null; chance?: number | null } | number | null;
  token_specialisation_chance?: number | null;
}

/** One line of a metric over depth; `dashed` draws it dashed (reference levels: baselines, chance; or a line that may lie on another). */
export interface Series {
  name: string;
  color: string;
  dashed?: boolean;
  value: (m: DepthMetrics) => number | null | undefined;
}

export interface DepthOptions {
  title?: string | null;
  width?: number;
  height?: number;
  yTitle: string;
  yDomain?: [number, number];
}

/** Rows {layer, series, value} of the series that have at least one value (a missing metric is not drawn as 0). */
export function depthRows(metrics: readonly DepthMetrics[], series: readonly Series[]): { rows: { layer: number; series: string; value: number }[]; shown: Series[] } {
  const rows: { layer: number; series: string; value: number }[] = [];
  const shown: Series[] = [];
  for (const s of series) {
    const mine = metrics.flatMap((m) => {
      const v = s.value(m);
      return typeof v === 'number' && Number.isFinite(v) ? [{ layer: m.layer, series: s.name, value: v }] : [];
    });
    if (mine.length) {
      rows.push(...mine);
      shown.push(s);
    }
  }
  return { rows, shown };
}

/** A line chart of some metrics over layers, with its legend naming each line. */
export function depthChart(metrics: readonly DepthMetrics[], series: readonly Series[], opts: DepthOptions): Vl {
  const { rows, shown } = depthRows(metrics, series);
  if (!rows.length) throw new RangeError(`no layer has ${series.map((s) => s.name).join(' or ')}`);
  const y = { field: 'value', type: 'quantitative', title: opts.yTitle, ...(opts.yDomain ? { scale: { domain: opts.yDomain } } : {}) };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    ...(opts.title ? { title: { text: opts.title, anchor: 'middle', fontSize: 15 } } : {}),
    background: 'white',
    padding: 8,
    data: { values: rows },
    width: Math.max(200, Math.min((opts.width ?? 640) - 190, 900)),
    height: Math.max(120, Math.min((opts.height ?? 320) - 80, 700)),
    layer: depthLines({ y, series: shown.map((s) => s.name), colors: shown.map((s) => s.color), dashed: shown.filter((s) => s.dashed).map((s) => s.name) }),
    config: figureConfig(),
  };
}

const tokenSpec = (m: DepthMetrics, key: 'value' | 'chance') => {
  const t = m.token_specialisation;
  if (t === null || t === undefined) return null;
  if (typeof t === 'number') return key === 'value' ? t : (m.token_specialisation_chance ?? null);
  return key === 'value' ? (t.value ?? t.mean ?? null) : (t.chance ?? m.token_specialisation_chance ?? null);
};

/** Specialisation S with its baseline S0, normalised MI and JSD over depth (bits / fractions). */
export function specialisationDepthFigure(metrics: readonly DepthMetrics[], opts: Partial<DepthOptions> = {}): Vl {
  return depthChart(metrics, [
    { name: 'S (specialisation)', color: '#4E79A7', value: (m) => m.S },
    { name: 'S0 (no specialisation)', color: '#4E79A7', dashed: true, value: (m) => m.S0 },
    { name: 'I(G;E)/H(G)', color: '#E15759', value: (m) => m.mi_norm },
    // dashed, drawn over MI: with two groups the two are often close, and neither hides the other
    { name: 'JSD (bits)', color: '#59A14F', dashed: true, value: (m) => m.jsd },
  ], { yTitle: 'bits / fraction', ...opts });
}

/** Token-id specialisation (OLMoE's vocabulary specialisation) and its chance level, over depth. */
export function tokenSpecialisationFigure(metrics: readonly DepthMetrics[], opts: Partial<DepthOptions> = {}): Vl {
  return depthChart(metrics, [
    { name: 'token specialisation', color: '#B07AA1', value: (m) => tokenSpec(m, 'value') },
    { name: 'chance', color: '#79706E', dashed: true, value: (m) => tokenSpec(m, 'chance') },
  ], { yTitle: 'mean max_e P(top-1 = e | token id)', yDomain: [0, 1], ...opts });
}

/** Router confidence over depth: mean top-1 gate and top-1 minus top-2 margin against the uniform 1/E. */
export function routerFigure(metrics: readonly DepthMetrics[], numExperts: number, opts: Partial<DepthOptions> = {}): Vl {
  return depthChart(metrics, [
    { name: 'top-1 gate (mean)', color: '#4E79A7', value: (m) => m.router?.gate_top1_mean },
    { name: 'top-1 - top-2 margin', color: '#E15759', value: (m) => m.router?.margin_mean },
    { name: `uniform 1/E = 1/${numExperts}`, color: '#79706E', dashed: true, value: (m) => (m.router?.gate_top1_mean != null ? 1 / numExperts : null) },
  ], { yTitle: 'router probability', yDomain: [0, 1], ...opts });
}

/** Router entropy (bits) over depth against its maximum log2 E (a uniform router). */
export function routerEntropyFigure(metrics: readonly DepthMetrics[], numExperts: number, opts: Partial<DepthOptions> = {}): Vl {
  return depthChart(metrics, [
    { name: 'router entropy', color: '#9C755F', value: (m) => m.router?.entropy_mean },
    { name: `uniform log2 E = ${Math.log2(numExperts).toFixed(2)}`, color: '#79706E', dashed: true, value: (m) => (m.router?.entropy_mean != null ? Math.log2(numExperts) : null) },
  ], { yTitle: 'bits', yDomain: [0, Math.ceil(Math.log2(numExperts))], ...opts });
}

/** Consecutive-token repeat rate of the top-1 expert (Mixtral's locality) against chance sum f_e^2. */
export function repeatFigure(metrics: readonly DepthMetrics[], opts: Partial<DepthOptions> = {}): Vl {
  return depthChart(metrics, [
    { name: 'repeat rate', color: '#59A14F', value: (m) => m.repeat_rate },
    { name: 'chance', color: '#79706E', dashed: true, value: (m) => m.repeat_rate_chance },
  ], { yTitle: 'share of consecutive tokens, same top-1 expert', yDomain: [0, 1], ...opts });
}
