import './style.css';
import { getJson, type Info } from './api.js';
import { Context } from './context.js';
import { clear, h } from './dom.js';
import { coactivationView } from './views/coactivation.js';
import { compareView } from './views/compare.js';
import { depthView } from './views/depth.js';
import { expertView } from './views/expert.js';
import { figureView } from './views/figure.js';
import { flowView } from './views/flow.js';
import { playgroundView } from './views/playground.js';
import { routerView } from './views/router.js';
import { sampleView } from './views/sample.js';
import { errorText, message, type View } from './views/view.js';

/** The dashboard: a header, one tab per view, the view named by the URL hash (#figure, #sample/12, #expert/16/3, ...). */
async function start(): Promise<void> {
  const root = document.getElementById('app')!;
  let info: Info;
  try {
    info = await getJson<Info>('api/info');
  } catch (e) {
    clear(root, message(`Cannot open the trace: ${errorText(e)}`, 'error'));
    return;
  }
  const ctx = new Context(info, (hash) => {
    if (location.hash === hash) void route();
    else location.hash = hash;
  });
  const views: View[] = [figureView(ctx), depthView(ctx), routerView(ctx), coactivationView(ctx), sampleView(ctx), expertView(ctx), flowView(ctx), compareView(ctx), playgroundView(ctx)];
  const t = info.traces[0];
  const tabs = views.map((v) => h('a', { href: `#${v.id}`, role: 'tab', id: `tab-${v.id}`, 'aria-controls': `view-${v.id}`, 'aria-selected': 'false' }, v.label));
  const nav = h('nav', { role: 'tablist', 'aria-label': 'Views' }, tabs);
  nav.addEventListener('keydown', (ev) => {
    const i = tabs.indexOf(document.activeElement as HTMLAnchorElement);
    if (i < 0 || (ev.key !== 'ArrowRight' && ev.key !== 'ArrowLeft')) return;
    const j = (i + (ev.key === 'ArrowRight' ? 1 : tabs.length - 1)) % tabs.length;
    tabs[j].focus();
    tabs[j].click();
  });
  const tokens = Object.entries(t.meta.tokens ?? {}).map(([m, n]) => `${n.toLocaleString('en-US')} ${m}`).join(' · ');
  const header = h('header', {},
    h('h1', {}, 'moescope'),
    h('div', { class: 'trace-info' },
      h('b', {}, t.folder), ` · ${t.meta.num_layers} layers · ${t.meta.num_experts} experts · top-${t.meta.top_k} · ${tokens}`,
      info.traces.length > 1 ? h('span', {}, ` · compared with `, info.traces.slice(1).flatMap((x, i) => [i ? ', ' : '', h('b', {}, x.folder)])) : null));
  const panes = views.map((v) => {
    v.el.id = `view-${v.id}`;
    v.el.setAttribute('role', 'tabpanel');
    v.el.setAttribute('aria-labelledby', `tab-${v.id}`);
    v.el.hidden = true;
    return v.el;
  });
  clear(root, header, nav, h('main', {}, panes));

  let active: View | null = null;
  const route = async () => {
    const [id, ...args] = location.hash.replace(/^#/, '').split('/');
    const v = views.find((x) => x.id === id) ?? views[0];
    active = v;
    for (const x of views) x.el.hidden = x !== v;
    tabs.forEach((tab, i) => {
      tab.setAttribute('aria-selected', String(views[i] === v));
      tab.tabIndex = views[i] === v ? 0 : -1;
    });
    try {
      await v.show(args);
    } catch (e) {
      v.el.prepend(message(errorText(e), 'error'));
    }
  };
  ctx.subscribe((_s, changed) => {
    if (active?.update) active.update(changed).catch((e) => active!.el.prepend(message(errorText(e), 'error')));
  });
  window.addEventListener('hashchange', () => void route());
  await route();
}

void start();
