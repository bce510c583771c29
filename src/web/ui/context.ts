import type { SortOrder } from '../../analysis/allocation.js';
import type { CountMode, Counts, Normalization } from '../../analysis/types.js';
import { countsFromJson, getJson, type CountsJson, type Info } from './api.js';

/** What the controls choose; every view reads it, the figure's controls write most of it. */
export interface UiState {
  count: CountMode;
  normalize: Normalization;
  sort: SortOrder;
  modalities: string[]; // analysed modalities (default text,image)
  panels: number[]; // layers shown as figure panels
  layer: number; // the layer the drill-downs look at
}

type Listener = (s: UiState, changed: (keyof UiState)[]) => void;

/** The page's shared state, data caches and navigation. */
export class Context {
  state: UiState;
  private listeners: Listener[] = [];
  private countsCache = new Map<string, Promise<Counts>>();

  constructor(readonly info: Info, readonly go: (hash: string) => void) {
    const t = info.traces[0];
    const mods = ['text', 'image'].filter((m) => t.modalities.includes(m));
    const L = t.meta.num_layers;
    // The seed's panels (0, round(2L/3), L-1), moved to the nearest layer the trace has.
    const near = (l: number) => t.layers.reduce((b, x) => (Math.abs(x - l) < Math.abs(b - l) ? x : b), t.layers[0]);
    const panels = [...new Set([0, Math.round((2 * L) / 3), L - 1].map(near))];
    this.state = { count: 'all', normalize: 'expert', sort: 'text', modalities: mods.length ? mods : t.modalities.slice(0, 2), panels, layer: panels[panels.length - 1] };
  }

  get trace() {
    return this.info.traces[0];
  }

  get numExperts(): number {
    return this.trace.meta.num_experts;
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

  /** Counts of every layer of a trace ('a' or 'b') for the chosen mode and modalities, fetched once. */
  counts(trace: 'a' | 'b' = 'a', count = this.state.count, modalities = this.state.modalities): Promise<Counts> {
    const key = `${trace}/${count}/${modalities.join(',')}`;
    let p = this.countsCache.get(key);
    if (!p) {
      p = getJson<CountsJson>(`api/counts?trace=${trace}&count=${count}&modalities=${encodeURIComponent(modalities.join(','))}`).then(countsFromJson);
      p.catch(() => this.countsCache.delete(key));
      this.countsCache.set(key, p);
    }
    return p;
  }
}
