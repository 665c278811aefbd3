// Subscriptions: every subscription on this node, filtered by client id or topic, paged.

import { api, enc, query } from '../api.js';
import { debounce, h, mount } from '../dom.js';
import { num, yesNo } from '../format.js';

const LIMIT = 50;

/** A paged table: load(page) → { data, meta }. Shared with the clients page. */
export function pagedTable({ columns, load, empty, testid }) {
  const body = h('tbody');
  const info = h('span', { 'data-testid': `${testid}-count` });
  const prev = h('button', { type: 'button', class: 'btn small' }, '‹ Previous');
  const next = h('button', { type: 'button', class: 'btn small' }, 'Next ›');
  const problem = h('div', { class: 'notice error hidden', role: 'alert' });
  const emptyEl = h('div', { class: 'empty hidden' }, empty);
  const table = h('table', { class: 'data', 'data-testid': testid },
    h('thead', null, h('tr', null, columns.map((c) => h('th', { class: c.num ? 'num' : null }, c.label)))), body);
  const el = h('div', null, problem, h('div', { class: 'table-wrap' }, table), emptyEl,
    h('div', { class: 'pager' }, info, prev, next));
  let page = 1;

  async function reload(to = page) {
    let answer;
    try {
      answer = await load(to);
      problem.classList.add('hidden');
    } catch (error) {
      if (error.status === 401) throw error;
      problem.textContent = error.missingRoute
        ? 'This hookmq does not serve this list yet.'
        : `Could not load: ${error.message}`;
      problem.classList.remove('hidden');
      return;
    }
    page = to;
    const rows = answer?.data ?? (Array.isArray(answer) ? answer : []);
    const meta = answer?.meta ?? { page: 1, limit: rows.length, count: rows.length };
    mount(body, rows.map((row) => h('tr', null, columns.map((c) => h('td', { class: c.num ? 'num' : null }, c.cell(row))))));
    emptyEl.classList.toggle('hidden', rows.length > 0);
    table.classList.toggle('hidden', rows.length === 0);
    const pages = Math.max(1, Math.ceil(meta.count / (meta.limit || LIMIT)));
    info.textContent = `${num(meta.count)} in all · page ${meta.page} of ${pages}`;
    prev.disabled = page <= 1;
    next.disabled = page >= pages;
  }
  prev.addEventListener('click', () => reload(page - 1));
  next.addEventListener('click', () => reload(page + 1));
  return { el, reload };
}

export function render(ctx) {
  ctx.crumbs([{ label: 'Monitoring' }, { label: 'Subscriptions' }]);
  const clientid = h('input', { type: 'search', placeholder: 'Client ID (exact)', 'aria-label': 'Client ID', 'data-testid': 'subscriptions-clientid', value: ctx.query.get('clientid') ?? '' });
  const topic = h('input', { type: 'search', placeholder: 'Topic filter (exact)', 'aria-label': 'Topic filter', 'data-testid': 'subscriptions-topic' });
  const table = pagedTable({
    testid: 'subscriptions-table',
    empty: 'No subscriptions.',
    columns: [
      { label: 'Client ID', cell: (s) => h('a', { href: `/clients/${enc(s.clientid)}` }, s.clientid) },
      { label: 'Topic', cell: (s) => h('code', null, s.topic) },
      { label: 'QoS', cell: (s) => String(s.qos), num: true },
      { label: 'No local', cell: (s) => yesNo(s.no_local) },
      { label: 'Retain as published', cell: (s) => yesNo(s.retain_as_published) },
      { label: 'Retain handling', cell: (s) => (s.retain_handling ?? '—'), num: true },
    ],
    load: (page) => api.get(`/subscriptions${query({ clientid: clientid.value.trim(), topic: topic.value.trim(), page, limit: LIMIT })}`),
  });
  const search = debounce(() => table.reload(1), 300);
  clientid.addEventListener('input', search);
  topic.addEventListener('input', search);
  mount(ctx.el,
    h('div', { class: 'page-head' }, h('div', null, h('h1', null, 'Subscriptions'), h('div', { class: 'sub' }, 'Topic filters of connected and offline sessions.')),
      h('div', { class: 'actions' }, h('button', { type: 'button', class: 'btn', onclick: () => table.reload() }, 'Refresh'))),
    h('div', { class: 'card' }, h('div', { class: 'toolbar' }, clientid, topic), table.el));
  return table.reload(1).then(() => { ctx.el.dataset.loaded = 'true'; });
}
