import type { UiState } from '../context.js';

/** One tab of the dashboard. `show` runs when the tab opens (with the hash's extra parts), `update` when the state changes while open. */
export interface View {
  id: string;
  label: string;
  el: HTMLElement;
  show(args: string[]): Promise<void>;
  update?(changed: (keyof UiState)[]): Promise<void>;
}

/** A one-line message inside a view (errors from the API are shown this way, never thrown at the page). */
export function message(text: string, kind: 'error' | 'info' = 'info'): HTMLElement {
  const p = document.createElement('p');
  p.className = `msg ${kind}`;
  p.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  p.textContent = text;
  return p;
}

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
