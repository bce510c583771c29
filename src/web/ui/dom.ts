/** A tiny DOM builder: h('button', { class: 'x', onclick: f, 'aria-pressed': 'true' }, 'label'). */
export type Child = Node | string | number | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, unknown> = {}, ...children: (Child | Child[])[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v as EventListener);
    else if (k === 'class') el.className = String(v);
    else if (k === 'style' && typeof v === 'object') Object.assign(el.style, v);
    else if (k in el && !k.includes('-') && k !== 'list') (el as unknown as Record<string, unknown>)[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

export function append(el: Element, children: (Child | Child[])[]): void {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === 'number' ? String(c) : c);
  }
}

export function clear(el: Element, ...children: (Child | Child[])[]): void {
  el.replaceChildren();
  append(el, children);
}

/** A labelled <select>; `onchange` gets the chosen value. */
export function select(label: string, options: { value: string; label: string }[], value: string, onchange: (v: string) => void, id?: string): HTMLLabelElement {
  const s = h('select', { id, onchange: () => onchange(s.value) }, options.map((o) => h('option', { value: o.value, selected: o.value === value }, o.label)));
  return h('label', { class: 'control' }, h('span', {}, label), s);
}

export function fmtPct(x: number | null | undefined, digits = 1): string {
  return x === null || x === undefined || !isFinite(x) ? '–' : `${(100 * x).toFixed(digits)}%`;
}

export function fmtNum(x: number | null | undefined, digits = 3): string {
  if (x === null || x === undefined || !isFinite(x)) return '–';
  return Number.isInteger(x) ? x.toLocaleString('en-US') : x.toFixed(digits);
}
