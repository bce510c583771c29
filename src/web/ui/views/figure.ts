import { SORT_ORDERS, type SortOrder } from '../../../analysis/allocation.js';
import { COUNT_MODES, NORMALIZATIONS, type CountMode, type Counts, type Normalization } from '../../../analysis/types.js';
import { figureData } from '../../../render/spec-data.js';
import { allocationFigure, type Vl } from '../../../render/spec.js';
import { draw, fitFigure, fitPanels, loadBars } from '../charts.js';
import { seedPanels, type Context } from '../context.js';
import { clear, h, select } from '../dom.js';
import { layerSlider } from './layer-slider.js';
import { errorText, message, type View } from './view.js';

/**
 * The counts of some layers (the figure then computes shares and orders for those alone).
 * The analysis' selectCounts does the same but lives in a module that imports Node (counts.ts reads rows).
 */
export function countsOfLayers(counts: Counts, layers: readonly number[]): Counts {
  const EM = counts.numExperts * counts.modalities.length, M = counts.modalities.length;
  const n = new Float64Array(layers.length * EM), tokens = new Float64Array(layers.length * M);
  layers.forEach((l, i) => {
    const li = counts.layers.indexOf(l);
    n.set(counts.n.subarray(li * EM, li * EM + EM), i * EM);
    tokens.set(counts.tokens.subarray(li * M, li * M + M), i * M);
  });
  return { ...counts, layers: [...layers], n, tokens };
}

/** The figure of `moescope plot` (the same functions from src/render) for some layers of counts, fitted to `width` px. */
export function figureSpec(counts: Counts, layers: number[], normalize: Normalization, sort: SortOrder, title?: string, width = 1200): Vl {
  // Only the shown layers: the figure's data and orders are then computed for them alone.
  const shown = layers.filter((l) => counts.layers.includes(l));
  const data = figureData(countsOfLayers(counts, shown), normalize, sort);
  const fit = fitPanels(width, shown.length, counts.numExperts);
  const spec = allocationFigure(data, { title: title ?? null, panelHeight: 190, columns: fit.columns, bandWidth: fit.band });
  return fitFigure(spec, fit.band, counts.numExperts);
}

/** Each expert's share of a layer's routings, ranked (the load view's rows). */
export function loadRows(counts: Counts, layers: number[]): { layer: number; expert: number; share: number; count: number; rank: number }[] {
  const E = counts.numExperts, M = counts.modalities.length;
  return layers.flatMap((layer) => {
    const li = counts.layers.indexOf(layer);
    if (li < 0) return [];
    const n = Array.from({ length: E }, (_, e) => {
      let s = 0;
      for (let m = 0; m < M; m++) s += counts.n[(li * E + e) * M + m];
      return s;
    });
    const total = n.reduce((a, b) => a + b, 0) || 1;
    const order = n.map((_, e) => e).sort((a, b) => n[b] - n[a] || a - b);
    const rank = new Map(order.map((e, i) => [e, i]));
    return n.map((c, e) => ({ layer, expert: e, share: (100 * c) / total, count: c, rank: rank.get(e)! }));
  });
}

const COUNT_LABELS: Record<CountMode, string> = { all: 'all k choices', top1: 'top-1 only', gate: 'gate-weighted' };
const NORM_LABELS: Record<Normalization, string> = { expert: 'per expert (the figure)', modality: 'per group P(e|g)', balanced: 'balanced by group size' };
const SORT_LABELS: Record<SortOrder, string> = { text: 'text share', image: 'image share', id: 'expert id', load: 'load' };

/** The width the page gives a chart. */
export function chartWidth(): number {
  return Math.max(480, Math.min(window.innerWidth, document.documentElement.clientWidth || window.innerWidth) - 60);
}

/** A note on the page when the default grouping is a fallback (text-only traces). */
export function fallbackNote(ctx: Context): HTMLElement | null {
  const g = ctx.trace.grouping;
  return g.fallback ? h('p', { class: 'msg fallback', role: 'note' }, g.fallback) : null;
}

/** The group picker (SPEC §3 --by): a select of groupings and chips of the analysed groups. */
export function groupControls(ctx: Context): { el: HTMLElement; refresh(): void } {
  const chips = h('div', { class: 'chips', role: 'group', 'aria-label': 'Groups analysed' });
  const bySel = select('Group by', ctx.trace.grouping.available.map((a) => ({ value: a.by, label: `${a.by} (${a.groups.length})` })), ctx.state.by, (v) => {
    const all = ctx.groupsOf(v);
    const groups = v === 'modality' ? ['text', 'image'].filter((m) => all.includes(m)) : all;
    ctx.set({ by: v, groups: groups.length ? groups : all.slice(0, 2) });
  }, 'group-by');
  const refresh = () => {
    (bySel.querySelector('select') as HTMLSelectElement).value = ctx.state.by;
    // Text first and image second (the figure stacks them in this order, Text at the bottom), others after.
    const rank = (m: string) => (m === 'text' ? 0 : m === 'image' ? 1 : 2);
    const all = [...ctx.groupsOf(ctx.state.by)].sort((a, b) => rank(a) - rank(b));
    clear(chips, all.map((m) => h('button', {
      class: 'chip', 'aria-pressed': String(ctx.state.groups.includes(m)), title: `Analyse ${m}`,
      onclick: () => {
        const on = ctx.state.groups.includes(m);
        const groups = on ? ctx.state.groups.filter((x) => x !== m) : all.filter((x) => x === m || ctx.state.groups.includes(x));
        if (groups.length) ctx.set({ groups });
      },
    }, m)));
  };
  refresh();
  return { el: h('div', { class: 'control group-controls' }, bySel, chips), refresh };
}

/** View 1: the figure for any layers, with a layer picker, a slider over all layers, the grouping and the counting/normalising/sorting toggles. */
export function figureView(ctx: Context): View {
  const layers = ctx.trace.layers;
  const chips = h('div', { class: 'chips', role: 'group', 'aria-label': 'Layers shown' });
  const groupsUi = groupControls(ctx);
  const fig = h('div', { id: 'figure', class: 'chart figure-chart' });
  const status = h('div', { class: 'status-line' });
  const note = h('div', { class: 'note' });
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
  // Sorting by a group's share: the analysis sorts by `text` or `image` share; other groupings sort by their first group.
  const sortBox = h('span', {});
  const drawSort = () => {
    const byMod = ctx.state.by === 'modality';
    const hasText = byMod && ctx.state.groups.includes('text');
    const orders = SORT_ORDERS.filter((m) => m !== 'image' || (byMod && ctx.state.groups.includes('image')));
    const label = (m: SortOrder) => (m === 'text' ? (hasText ? 'text share' : `${ctx.state.groups[0] ?? 'first group'} share`) : SORT_LABELS[m]);
    if (!orders.includes(ctx.state.sort)) ctx.state.sort = 'text';
    clear(sortBox, select('Sort', orders.map((m) => ({ value: m, label: label(m) })), ctx.state.sort, (v) => ctx.set({ sort: v as SortOrder }), 'sort'));
  };
  const controls = h('div', { class: 'controls' },
    h('div', { class: 'control layers' }, h('span', {}, 'Layers'), chips,
      h('button', { class: 'small', onclick: () => ctx.set({ panels: seedPanels(layers, ctx.trace.meta.num_layers) }) }, 'seed layers'),
      h('button', { class: 'small', onclick: () => ctx.set({ panels: [...layers] }) }, 'all')),
    slider.el,
    groupsUi.el,
    select('Count', COUNT_MODES.map((m) => ({ value: m, label: COUNT_LABELS[m] })), ctx.state.count, (v) => ctx.set({ count: v as CountMode }), 'count'),
    select('Normalise', NORMALIZATIONS.map((m) => ({ value: m, label: NORM_LABELS[m] })), ctx.state.normalize, (v) => ctx.set({ normalize: v as Normalization }), 'normalize'),
    sortBox,
  );
  const table = h('div', { class: 'table-wrap' });
  const el = h('section', { class: 'view', 'aria-label': 'Figure' }, note, controls, fig, status,
    h('p', { class: 'hint' }, 'Hover a bar for its counts and shares; click it (or Tab to the figure, arrow keys, Enter) to see the tokens routed to that expert.'),
    h('details', { class: 'data-table' }, h('summary', {}, 'The figure as a table'), table));

  let drawn = 0;
  const render = async () => {
    const ticket = ++drawn;
    drawChips();
    drawSort();
    groupsUi.refresh();
    slider.set(ctx.state.layer);
    const fb = fallbackNote(ctx);
    clear(note, ctx.state.by === ctx.trace.grouping.by && fb ? fb : null,
      ctx.loadOnly && !(ctx.state.by === ctx.trace.grouping.by && ctx.trace.grouping.loadOnly) ? message(`Only one group (${ctx.state.groups.join('')}) is analysed: the figure shows load. Pick a second group to compare.`) : null);
    // Counting a large trace in a new mode takes a scan on the server; say so instead of freezing.
    const slow = window.setTimeout(() => clear(status, 'counting…'), 150);
    try {
      const counts = await ctx.counts();
      clearTimeout(slow);
      if (ticket !== drawn) return;
      const { panels, normalize, sort } = ctx.state;
      const open = (d: Record<string, unknown>) => {
        if (typeof d.layer === 'number' && typeof d.expert === 'number') ctx.go(`#expert/${d.layer}/${d.expert}`);
      };
      const width = chartWidth();
      if (ctx.loadOnly) {
        const fit = fitPanels(width, panels.length, counts.numExperts);
        await draw(fig, loadBars(loadRows(counts, panels), { layers: panels, numExperts: counts.numExperts, columns: fit.columns, band: fit.band, title: 'Load: each expert\u2019s share of the routings, sorted (dashed: uniform 1/E)' }), open);
      } else {
        await draw(fig, figureSpec(counts, panels, normalize, sort, undefined, width), open);
      }
      if (ticket !== drawn) return;
      fig.dataset.panels = panels.join(',');
      fig.dataset.drawn = String(ticket);
      fig.dataset.kind = ctx.loadOnly ? 'load' : 'groups';
      if (!performance.getEntriesByName('moescope:figure-drawn').length) requestAnimationFrame(() => performance.mark('moescope:figure-drawn'));
      const data = figureData(countsOfLayers(counts, panels.filter((l) => counts.layers.includes(l))), normalize, sort);
      const cell = new Map(data.rows.map((r) => [`${r.layer}/${r.expert}/${r.group}`, r]));
      clear(table, h('table', {},
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Layer'), h('th', { scope: 'col' }, 'Expert'),
          counts.modalities.flatMap((m) => [h('th', { scope: 'col' }, `${m} %`), h('th', { scope: 'col' }, `${m} count`)]), h('th', { scope: 'col' }, ''))),
        h('tbody', {}, panels.filter((l) => data.order[l]).flatMap((l) => data.order[l].map((e) => {
          const cells = counts.modalities.map((m) => cell.get(`${l}/${e}/${m}`));
          return h('tr', {}, h('th', { scope: 'row' }, String(l)), h('td', {}, String(e)),
            cells.flatMap((r) => [h('td', {}, r?.share === null || r?.share === undefined ? '–' : r.share.toFixed(1)), h('td', {}, r ? r.count.toLocaleString('en-US') : '0')]),
            h('td', {}, h('a', { href: `#expert/${l}/${e}` }, 'open')));
        })))));
      clear(status, `${ctx.state.by}: ${counts.modalities.join(' + ')} · counting ${COUNT_LABELS[ctx.state.count]} · top-${counts.topK} of ${counts.numExperts} experts`);
    } catch (e) {
      clearTimeout(slow);
      clear(status);
      clear(fig, message(errorText(e), 'error'));
    }
  };
  let resizeTimer = 0;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = window.setTimeout(() => {
      if (!el.hidden) void render();
    }, 250);
  });
  return {
    id: 'figure', label: 'Figure', el,
    show: render,
    update: async (changed) => {
      if (changed.some((k) => k === 'panels' || k === 'count' || k === 'normalize' || k === 'sort' || k === 'groups' || k === 'by')) await render();
      else if (changed.includes('layer')) slider.set(ctx.state.layer);
    },
  };
}
