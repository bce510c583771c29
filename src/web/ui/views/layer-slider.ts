import { h } from '../dom.js';

/** A slider over the trace's layers (which may skip indices, e.g. every other layer is MoE). */
export function layerSlider(layers: number[], value: number, onchange: (layer: number) => void, label = 'Layer'): { el: HTMLElement; set(v: number): void } {
  const out = h('output', { class: 'slider-value' }, String(value));
  const input = h('input', {
    type: 'range', min: '0', max: String(layers.length - 1), step: '1', value: String(Math.max(0, layers.indexOf(value))),
    'aria-label': label, 'aria-valuetext': `Layer ${value}`, class: 'layer-slider',
    oninput: () => {
      const l = layers[Number(input.value)];
      out.textContent = String(l);
      input.setAttribute('aria-valuetext', `Layer ${l}`);
      onchange(l);
    },
  });
  return {
    el: h('label', { class: 'control slider' }, h('span', {}, label), input, out),
    set(v: number) {
      const i = layers.indexOf(v);
      if (i >= 0) {
        input.value = String(i);
        out.textContent = String(v);
        input.setAttribute('aria-valuetext', `Layer ${v}`);
      }
    },
  };
}
