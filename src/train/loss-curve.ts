/** One line of the training log (train-log.jsonl). */
export interface TrainLogRow {
  kind: 'train';
  step: number; // updates done (1-based)
  loss: number; // ce + aux + z
  ce: number;
  aux: number;
  z: number;
  lr: number;
  grad_norm: number; // before clipping
  tokens: number; // tokens in this step's batch
  text_targets: number;
  tokens_per_s: number;
  elapsed_s: number;
  // the router's state over this batch, per layer band (absent in logs of older runs)
  router_bands?: string[]; // e.g. ["0-7", "8-15", "16-23"]
  gate_top1?: number[]; // mean top-1 gate per band (1/E = a tie, 1 = decided)
  router_entropy?: number[]; // mean router entropy per band, bits (log2 E = a tie)
}

/** A held-out evaluation, logged in the same file. */
export interface EvalLogRow {
  kind: 'eval';
  step: number;
  eval_ce: number;
  eval_loss: number;
  [extra: string]: number | string;
}

export type LogRow = TrainLogRow | EvalLogRow;

/**
 * Loss curve as a Vega-Lite spec: training CE and total loss (smoothed over a window so the
 * batch noise does not hide the trend) and held-out CE, against the step. Pure: data in, spec out.
 */
export function lossCurveSpec(rows: LogRow[], opts: { title?: string; smooth?: number; experts?: number } = {}): Record<string, unknown> {
  const train = rows.filter((r): r is TrainLogRow => r.kind === 'train');
  const evals = rows.filter((r): r is EvalLogRow => r.kind === 'eval');
  const w = opts.smooth ?? Math.max(1, Math.round(train.length / 50));
  const values: { step: number; series: string; value: number }[] = [];
  const smooth = (key: 'ce' | 'loss') => {
    let acc = 0;
    const q: number[] = [];
    for (const r of train) {
      q.push(r[key]);
      acc += r[key];
      if (q.length > w) acc -= q.shift()!;
      values.push({ step: r.step, series: key === 'ce' ? 'train CE' : 'train loss (CE + aux + z)', value: acc / q.length });
    }
  };
  smooth('loss');
  smooth('ce');
  for (const r of evals) values.push({ step: r.step, series: 'held-out CE', value: r.eval_ce });
  const loss = {
    width: 560,
    height: 300,
    data: { values },
    mark: { type: 'line', point: false, strokeWidth: 1.5 },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: 'Step' },
      y: { field: 'value', type: 'quantitative', title: 'Loss (nats per text token)', scale: { zero: false } },
      color: {
        field: 'series', type: 'nominal', title: null,
        scale: { domain: ['train loss (CE + aux + z)', 'train CE', 'held-out CE'], range: ['#9ca3af', '#2563eb', '#dc2626'] },
        legend: { orient: 'top-right', labelLimit: 400 },
      },
    },
  };
  const router = routerPanels(train, w, opts.experts);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: opts.title ?? 'Training loss',
    background: 'white',
    ...(router.length ? { vconcat: [loss, ...router], resolve: { scale: { color: 'independent' } } } : loss),
    config: { font: 'DejaVu Sans' },
  };
}

/**
 * The router's state while training (issue 14), smoothed like the loss: mean top-1 gate and router
 * entropy per layer band, with the level of a router at a tie (1/E, log2 E) as a dashed rule, so
 * routers that do not decide are visible. Empty for logs without router fields.
 */
function routerPanels(train: TrainLogRow[], w: number, experts?: number): Record<string, unknown>[] {
  const rows = train.filter((r) => r.router_bands && r.gate_top1 && r.router_entropy);
  if (!rows.length) return [];
  const bands = rows[rows.length - 1].router_bands!;
  const panel = (key: 'gate_top1' | 'router_entropy', title: string, tie: number | undefined) => {
    const values: { step: number; band: string; value: number }[] = [];
    bands.forEach((band, b) => {
      let acc = 0;
      const q: number[] = [];
      for (const r of rows) {
        const v = r[key]![b];
        q.push(v);
        acc += v;
        if (q.length > w) acc -= q.shift()!;
        values.push({ step: r.step, band: `layers ${band}`, value: acc / q.length });
      }
    });
    const line = {
      data: { values },
      mark: { type: 'line', strokeWidth: 1.5 },
      encoding: {
        x: { field: 'step', type: 'quantitative', title: 'Step' },
        y: { field: 'value', type: 'quantitative', title, scale: { zero: false } },
        color: { field: 'band', type: 'nominal', title: null, scale: { domain: bands.map((b) => `layers ${b}`), range: ['#0f766e', '#a16207', '#7c3aed'] }, legend: { orient: 'top-right' } },
      },
    };
    const layer: Record<string, unknown>[] = [line];
    if (tie !== undefined) layer.push({ data: { values: [{ tie }] }, mark: { type: 'rule', strokeDash: [4, 3], color: '#6b7280' }, encoding: { y: { field: 'tie', type: 'quantitative' } } });
    return { width: 560, height: 140, layer };
  };
  return [
    panel('gate_top1', 'Router: mean top-1 gate', experts ? 1 / experts : undefined),
    panel('router_entropy', 'Router entropy (bits)', experts ? Math.log2(experts) : undefined),
  ];
}
