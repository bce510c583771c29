import { layerShares } from '../../../analysis/allocation.js';
import { countsFromJson, getJson, type CompareJson } from '../api.js';
import { diffHeatmap, draw } from '../charts.js';
import type { Context } from '../context.js';
import { clear, h } from '../dom.js';
import { figureSpec } from './figure.js';
import { errorText, message, type View } from './view.js';

/** View 6: a second trace (`serve A --compare B`): both figures and the per-expert difference of image share, B - A. */
export function compareView(ctx: Context): View {
  const figA = h('div', { class: 'chart', id: 'compare-a' });
  const figB = h('div', { class: 'chart', id: 'compare-b' });
  const diff = h('div', { class: 'chart', id: 'compare-diff' });
  const top = h('div', { class: 'table-wrap', id: 'compare-top' });
  const body = h('div', {}, figA, figB, diff, top);
  const el = h('section', { class: 'view', 'aria-label': 'Compare two traces' }, body);
  const render = async () => {
    if (ctx.info.traces.length < 2) {
      clear(body, message('Only one trace is open. Start the dashboard with `moescope serve A --compare B` to compare two traces (e.g. two checkpoints, or two data sets on one model).'));
      return;
    }
    if (!body.contains(figA)) clear(body, figA, figB, diff, top);
    try {
      const { count, modalities, panels, normalize, sort } = ctx.state;
      const r = await getJson<CompareJson>(`api/compare?count=${count}&modalities=${encodeURIComponent(modalities.join(','))}`);
      const [A, B] = [countsFromJson(r.a), countsFromJson(r.b)];
      const pa = panels.filter((l) => A.layers.includes(l)), pb = panels.filter((l) => B.layers.includes(l));
      await draw(figA, figureSpec(A, pa.length ? pa : A.layers.slice(0, 3), normalize, sort, `A: ${r.names[0]}`));
      await draw(figB, figureSpec(B, pb.length ? pb : B.layers.slice(0, 3), normalize, sort, `B: ${r.names[1]}`));
      const mi = A.modalities.indexOf('image') >= 0 ? A.modalities.indexOf('image') : A.modalities.length - 1;
      const layers = A.layers.filter((l) => B.layers.includes(l));
      const E = Math.max(A.numExperts, B.numExperts);
      const rows = layers.flatMap((l) => {
        const sa = layerShares(A, A.layers.indexOf(l), normalize), sb = layerShares(B, B.layers.indexOf(l), normalize);
        return Array.from({ length: E }, (_, e) => {
          const a = sa[e] ? 100 * sa[e]![mi] : null, b = sb[e] ? 100 * sb[e]![mi] : null;
          return { layer: l, expert: e, a, b, diff: a !== null && b !== null ? b - a : null };
        });
      });
      const mod = A.modalities[mi] ?? 'image';
      await draw(diff, diffHeatmap(rows, { title: `${mod} share per expert, B − A (percentage points)`, label: 'B − A', numExperts: E, layers }));
      const biggest = rows.filter((r) => r.diff !== null).sort((x, y) => Math.abs(y.diff!) - Math.abs(x.diff!)).slice(0, 12);
      clear(top, h('h3', {}, `Largest differences in ${mod} share`), h('table', {},
        h('thead', {}, h('tr', {}, ['Layer', 'Expert', `A ${mod} %`, `B ${mod} %`, 'B − A'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, biggest.map((r) => h('tr', {}, h('th', { scope: 'row' }, String(r.layer)), h('td', {}, h('a', { href: `#expert/${r.layer}/${r.expert}`, title: 'this expert in trace A' }, String(r.expert))),
          h('td', {}, r.a!.toFixed(1)), h('td', {}, r.b!.toFixed(1)), h('td', {}, `${r.diff! > 0 ? '+' : ''}${r.diff!.toFixed(1)}`))))));
    } catch (e) {
      clear(body, message(errorText(e), 'error'));
    }
  };
  return {
    id: 'compare', label: 'Compare', el, show: render,
    update: async (changed) => {
      if (changed.some((k) => k !== 'layer')) await render();
    },
  };
}
