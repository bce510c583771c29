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
export function lossCurveSpec(rows: LogRow[], opts: { title?: string; smooth?: number } = {}): Record<string, unknown> {
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
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: opts.title ?? 'Training loss',
    width: 560,
    height: 300,
    background: 'white',
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
    config: { font: 'DejaVu Sans' },
  };
}
