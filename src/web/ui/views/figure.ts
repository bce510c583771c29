import { SORT_ORDERS, type SortOrder } from '../../../analysis/allocation.js';
import { COUNT_MODES, NORMALIZATIONS, type CountMode, type Counts, type Normalization } from '../../../analysis/types.js';
import { figureData } from '../../../render/spec-data.js';
import { allocationFigure, type Vl } from '../../../render/spec.js';
import { draw } from '../charts.js';
import type { Context } from '../context.js';
import { clear, h, select } from '../dom.js';
import { layerSlider } from './layer-slider.js';
import { errorText, message, type View } from './view.js';

/** The figure of `moescope plot` (the same functions from src/render) for some layers of counts. */
export function figureSpec(counts: Counts, layers: number[], normalize: Normalization, sort: SortOrder, title?: string): Vl {
  const data = figureData(counts, normalize, sort);
  const keep = new Set(layers);
  return allocationFigure({ ...data, layers: layers.filter((l) => data.layers.includes(l)), rows: data.rows.filter((r) => keep.has(r.layer)) }, { title: title ?? null, panelHeight: 190 });
}

const COUNT_LABELS: Record<CountMode, string> = { all: 'all k choices', top1: 'top-1 only', gate: 'gate-weighted' };
const NORM_LABELS: Record<Normalization, string> = { expert: 'per expert (the figure)', modality: 'per modality P(e|m)', balanced: 'balanced by modality size' };
const SORT_LABELS: Record<SortOrder, string> = { text: 'text share', image: 'image share', id: 'expert id', load: 'load' };

/** View 1: the figure for any layers, with a layer picker, a slider over all layers and the counting/normalising/sorting toggles. */
export function figureView(ctx: Context): View {
  const layers = ctx.trace.layers;
  const chips = h('div', { class: 'chips', role: 'group', 'aria-label': 'Layers shown' });
  const modChips = h('div', { class: 'chips', role: 'group', 'aria-label': 'Modalities analysed' });
  const drawModChips = () => {
    // Text first and image second (the figure stacks them in this order, Text at the bottom), others after.
    const rank = (m: string) => (m === 'text' ? 0 : m === 'image' ? 1 : 2);
    const all = [...ctx.trace.modalities].sort((a, b) => rank(a) - rank(b));
    clear(modChips, all.map((m) => h('button', {
      class: 'chip', 'aria-pressed': String(ctx.state.modalities.includes(m)), title: `Analyse ${m} tokens`,
      onclick: () => {
        const on = ctx.state.modalities.includes(m);
        const mods = on ? ctx.state.modalities.filter((x) => x !== m) : all.filter((x) => x === m || ctx.state.modalities.includes(x));
        if (mods.length) ctx.set({ modalities: mods });
      },
    }, m)));
  };
  const fig = h('div', { id: 'figure', class: 'chart' });
  const status = h('div', { class: 'status-line' });
  const slider = layerSlider(layers, ctx.state.layer, (l) => ctx.set({ panels: [l], layer: l }), 'Scrub layers');
  const drawChips = () => {
    clear(chips, layers.map((l) => h('button', {
      class: 'chip', 'aria-pressed': String(ctx.state.panels.includes(l)), title: `Show layer ${l}`,
      onclick: () => {
        const on = ctx.state.panels.includes(l);
        const panels = on ? ctx.state.panels.filter((x) => x !== l) : [...ctx.state.panels, l].sort((a, b) => a - b);
        if (panels.length) ctx.set({ panels, layer: l });
      },
    }, String(l))));
  };
  const controls = h('div', { class: 'controls' },
    h('div', { class: 'control layers' }, h('span', {}, 'Layers'), chips,
      h('button', { class: 'small', onclick: () => ctx.set({ panels: defaultPanels(ctx) }) }, 'seed layers'),
      h('button', { class: 'small', onclick: () => ctx.set({ panels: [...layers] }) }, 'all')),
    slider.el,
    select('Count', COUNT_MODES.map((m) => ({ value: m, label: COUNT_LABELS[m] })), ctx.state.count, (v) => ctx.set({ count: v as CountMode }), 'count'),
    select('Normalise', NORMALIZATIONS.map((m) => ({ value: m, label: NORM_LABELS[m] })), ctx.state.normalize, (v) => ctx.set({ normalize: v as Normalization }), 'normalize'),
    select('Sort', SORT_ORDERS.map((m) => ({ value: m, label: SORT_LABELS[m] })), ctx.state.sort, (v) => ctx.set({ sort: v as SortOrder }), 'sort'),
    h('div', { class: 'control' }, h('span', {}, 'Modalities'), modChips),
  );
  const table = h('div', { class: 'table-wrap' });
  const el = h('section', { class: 'view', 'aria-label': 'Figure' }, controls, fig, status,
    h('p', { class: 'hint' }, 'Hover a bar for its counts and shares; click it to see the tokens and patches routed to that expert.'),
    h('details', { class: 'data-table' }, h('summary', {}, 'The figure as a table'), table));

  let drawn = 0;
  const render = async () => {
    const ticket = ++drawn;
    drawChips();
    drawModChips();
    slider.set(ctx.state.layer);
    // Counting a large trace in a new mode takes a scan on the server; say so instead of freezing.
    const slow = window.setTimeout(() => clear(status, 'counting…'), 150);
    try {
      const counts = await ctx.counts();
      clearTimeout(slow);
      if (ticket !== drawn) return;
      const { panels, normalize, sort } = ctx.state;
      await draw(fig, figureSpec(counts, panels, normalize, sort), (d) => {
        if (typeof d.layer === 'number' && typeof d.expert === 'number') ctx.go(`#expert/${d.layer}/${d.expert}`);
      });
      if (ticket !== drawn) return;
      fig.dataset.panels = panels.join(',');
      fig.dataset.drawn = String(ticket);
      if (!performance.getEntriesByName('moescope:figure-drawn').length) requestAnimationFrame(() => performance.mark('moescope:figure-drawn'));
      const data = figureData(counts, normalize, sort);
      clear(table, h('table', {},
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Layer'), h('th', { scope: 'col' }, 'Expert'),
          counts.modalities.flatMap((m) => [h('th', { scope: 'col' }, `${m} %`), h('th', { scope: 'col' }, `${m} count`)]), h('th', { scope: 'col' }, ''))),
        h('tbody', {}, panels.flatMap((l) => data.order[l].map((e) => {
          const cells = counts.modalities.map((m) => data.rows.find((r) => r.layer === l && r.expert === e && r.group === m));
          return h('tr', {}, h('th', { scope: 'row' }, String(l)), h('td', {}, String(e)),
            cells.flatMap((r) => [h('td', {}, r?.share === null || r?.share === undefined ? '–' : r.share.toFixed(1)), h('td', {}, r ? r.count.toLocaleString('en-US') : '0')]),
            h('td', {}, h('a', { href: `#expert/${l}/${e}` }, 'open')));
        })))));
      clear(status, `${counts.modalities.join(' + ')} · counting ${COUNT_LABELS[ctx.state.count]} · top-${counts.topK} of ${counts.numExperts} experts`);
    } catch (e) {
      clearTimeout(slow);
      clear(status);
      clear(fig, message(errorText(e), 'error'));
    }
  };
  return {
    id: 'figure', label: 'Figure', el,
    show: render,
    update: async (changed) => {
      if (changed.some((k) => k === 'panels' || k === 'count' || k === 'normalize' || k === 'sort' || k === 'modalities')) await render();
      else if (changed.includes('layer')) slider.set(ctx.state.layer);
    },
  };
}

function defaultPanels(ctx: Context): number[] {
  const t = ctx.trace;
  const L = t.meta.num_layers;
  const near = (l: number) => t.layers.reduce((b, x) => (Math.abs(x - l) < Math.abs(b - l) ? x : b), t.layers[0]);
  return [...new Set([0, Math.round((2 * L) / 3), L - 1].map(near))];
}
