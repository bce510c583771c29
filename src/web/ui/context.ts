import type { SortOrder } from '../../analysis/allocation.js';
import type { CountMode, Counts, Normalization } from '../../analysis/types.js';
import { countsFromJson, getJson, groupQuery, type CountsJson, type Info, type LayerStatsJson } from './api.js';

/** What the controls choose; every view reads it, the figure's controls write most of it. */
export interface UiState {
  count: CountMode;
  normalize: Normalization;
  sort: SortOrder;
  by: string; // SPEC §3 --by: modality, domain, phase, ...
  groups: string[]; // analysed groups of `by` (default text,image)
  panels: number[]; // layers shown as figure panels
  layer: number; // the layer the drill-downs look at
}

type Listener = (s: UiState, changed: (keyof UiState)[]) => void;

/** The seed's panels (0, round(2L/3), L-1), moved to the nearest layer the trace has. */
export function seedPanels(layers: readonly number[], numLayers: number): number[] {
  const near = (l: number) => layers.reduce((b, x) => (Math.abs(x - l) < Math.abs(b - l) ? x : b), layers[0]);
  return [...new Set([0, Math.round((2 * numLayers) / 3), numLayers - 1].map(near))];
}

/** The page's shared state, data caches and navigation. */
export class Context {
  state: UiState;
  private listeners: Listener[] = [];
  private cache = new Map<string, Promise<unknown>>();

  constructor(readonly info: Info, readonly go: (hash: string) => void) {
    const t = info.traces[0];
    const panels = seedPanels(t.layers, t.meta.num_layers);
    this.state = { count: 'all', normalize: 'expert', sort: 'text', by: t.grouping.by, groups: [...t.grouping.groups], panels, layer: panels[panels.length - 1] };
  }

  get trace() {
    return this.info.traces[0];
  }

  get numExperts(): number {
    return this.trace.meta.num_experts;
  }

  /** Nothing to compare between groups (one group): the views show load. */
  get loadOnly(): boolean {
    return this.state.groups.length < 2;
  }

  /** The values of a grouping. */
  groupsOf(by: string): string[] {
    return this.trace.grouping.available.find((a) => a.by === by)?.groups ?? [];
  }

  set(patch: Partial<UiState>): void {
    const changed = (Object.keys(patch) as (keyof UiState)[]).filter((k) => JSON.stringify(patch[k]) !== JSON.stringify(this.state[k]));
    if (!changed.length) return;
    this.state = { ...this.state, ...patch };
    for (const l of this.listeners) l(this.state, changed);
  }

  subscribe(l: Listener): void {
    this.listeners.push(l);
  }

  get groupQuery(): string {
    return groupQuery(this.state.by, this.state.groups);
  }

  /** A JSON resource, fetched once per URL (a failed one is fetched again next time). */
  fetchOnce<T>(url: string, map: (j: unknown) => T = (j) => j as T): Promise<T> {
    let p = this.cache.get(url) as Promise<T> | undefined;
    if (!p) {
      p = getJson<unknown>(url).then(map);
      p.catch(() => this.cache.delete(url));
      this.cache.set(url, p);
    }
    return p;
  }

  /** Counts of every layer of a trace ('a', 'b', ...) for the chosen mode and grouping, fetched once. */
  counts(trace = 'a', count = this.state.count, by = this.state.by, groups = this.state.groups): Promise<Counts> {
    return this.fetchOnce(`api/counts?trace=${trace}&count=${count}&${groupQuery(by, groups)}`, (j) => countsFromJson(j as CountsJson));
  }

  layerStats(): Promise<LayerStatsJson> {
    return this.fetchOnce(`api/layer-stats?${this.groupQuery}`);
  }
}
