import { figureConfig } from './spec.js';
import { thinLabels } from './spec-layout.js';
import { heatCells, type Vl } from './spec-marks.js';

/** SPEC §3 `coactivation` of one layer: C[i][j] = #(i and j both in the top-k) / #(i in the top-k). */
export interface CoactivationMatrix {
  layer: number;
  matrix: readonly (readonly number[])[];
}

export interface CoactivationOptions {
  title?: string | null;
  width?: number;
  columns?: number;
  slackX?: number;
}

/**
 * E x E heatmap per layer (OLMoE's co-activation figure): row i, column j, colour C[i][j]
 * (how often j is chosen with i, of i's tokens); the diagonal is left out (always 1).
 */
export function coactivationFigure(layers: readonly CoactivationMatrix[], opts: CoactivationOptions = {}): Vl {
  const E = layers[0]?.matrix.length ?? 0;
  const columns = Math.max(1, Math.min(layers.length, opts.columns ?? (E <= 32 ? 3 : E <= 64 ? 2 : 1)));
  const avail = ((opts.width ?? 1400) - (opts.slackX ?? 0) - 140) / columns - 50;
  const cell = Math.max(1, Math.min(24, Math.floor(avail / Math.max(1, E))));
  const values: { layer: number; i: number; j: number; c: number }[] = [];
  for (const { layer, matrix } of layers) {
    matrix.forEach((row, i) => row.forEach((c, j) => {
      if (i !== j) values.push({ layer, i, j, c });
    }));
  }
  const ids = Array.from({ length: E }, (_, e) => e);
  const every = Math.max(1, Math.ceil(14 / cell));
  const axis = { values: thinLabels(ids, every), labelFontSize: Math.min(11, Math.max(8, cell)), labelAngle: 0 };
  const max = Math.max(1e-9, ...values.map((v) => v.c));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    ...(opts.title ? { title: { text: opts.title, anchor: 'middle', fontSize: 15 } } : {}),
    background: 'white',
    padding: 8,
    data: { values },
    columns,
    concat: layers.map(({ layer }) => ({
      title: `Layer ${layer}`,
      width: cell * E,
      height: cell * E,
      transform: [{ filter: `datum.layer === ${layer}` }],
      layer: [heatCells({
        x: { field: 'j', type: 'ordinal', title: 'Co-activated expert j', scale: { domain: ids, paddingInner: 0 }, axis: { ...axis, labelAngle: cell * every >= 20 ? 0 : 270 } },
        y: { field: 'i', type: 'ordinal', title: 'Expert i', scale: { domain: ids, paddingInner: 0 }, axis },
        value: 'c',
        title: 'P(j in top-k | i)',
        scheme: 'viridis',
        domain: [0, max],
        tooltip: [
          { field: 'layer', type: 'ordinal', title: 'Layer' },
          { field: 'i', type: 'ordinal', title: 'Expert i' },
          { field: 'j', type: 'ordinal', title: 'Expert j' },
          { field: 'c', type: 'quantitative', title: 'P(j | i)', format: '.3f' },
        ],
      })],
    })),
    resolve: { scale: { color: 'shared' } },
    config: figureConfig(),
  };
}
