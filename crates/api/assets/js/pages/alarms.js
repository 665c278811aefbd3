// Alarms: the active ones (or the past ones) of every node, as EMQX's Monitoring → Alarms;
// the past ones can be cleared.

import { api, query } from '../api.js';
import { confirmDialog, toast } from '../dialogs.js';
import { h, mount } from '../dom.js';
import { pagedTable } from './subscriptions.js';

const LIMIT = 50;

/** `ms` as "1 h 2 min", "3 min 4 s" or "5 s". */
function duration(ms) {
  const s = Math.floor((ms ?? 0) / 1000);
  if (s >= 3600) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  if (s >= 60) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${s} s`;
}

const when = (text) => (text ? new Date(text).toLocaleString() : '—');

/** An alarm's details, one `key: value` line each (or the text EMQX gives instead). */
function details(value) {
  if (value === null || typeof value !== 'object') return String(value ?? '—');
  return h('div', { class: 'details' }, Object.entries(value).map(([key, v]) =>
    h('div', null, h('span', { class: 'muted' }, `${key}: `), typeof v === 'object' ? JSON.stringify(v) : String(v))));
}

export function render(ctx) {
  ctx.crumbs([{ label: 'Monitoring' }, { label: 'Alarms' }]);
  let active = ctx.query.get('activated') !== 'false';
  const columns = () => [
    { label: 'Name', cell: (a) => h('code', null, a.name) },
    { label: 'Message', cell: (a) => a.message },
    { label: 'Details', cell: (a) => details(a.details) },
    { label: 'Node', cell: (a) => a.node },
    { label: 'Activated', cell: (a) => when(a.activate_at) },
    ...(active ? [] : [{ label: 'Deactivated', cell: (a) => when(a.deactivate_at) }]),
    { label: 'Duration', cell: (a) => duration(a.duration), num: true },
  ];
  const holder = h('div');
  let table;
  const build = () => {
    table = pagedTable({
      testid: 'alarms-table',
      empty: active ? 'No active alarm.' : 'No past alarm.',
      columns: columns(),
      load: (page) => api.get(`/alarms${query({ activated: String(active), page, limit: LIMIT })}`),
    });
    mount(holder, table.el);
    return table.reload(1);
  };
  const tabs = ['Active', 'History'].map((label) => {
    const on = (label === 'Active') === active;
    return h('button', {
      type: 'button', class: ['btn', 'small', on ? 'primary' : null], 'data-testid': `alarms-${label.toLowerCase()}`,
      onclick: () => { active = label === 'Active'; render(Object.assign(ctx, { query: new URLSearchParams({ activated: String(active) }) })); },
    }, label);
  });
  const clear = h('button', {
    type: 'button', class: 'btn', 'data-testid': 'alarms-clear',
    onclick: async () => {
      const yes = await confirmDialog({
        title: 'Clear the history?',
        message: 'The past alarms of this node are forgotten; active alarms stay.',
        confirmText: 'Clear',
      });
      if (!yes) return;
      await api.del('/alarms');
      toast('Past alarms cleared');
      build();
    },
  }, 'Clear history');
  mount(ctx.el,
    h('div', { class: 'page-head' },
      h('div', null, h('h1', null, 'Alarms'),
        h('div', { class: 'sub' }, 'High memory, a webhook’s receiver down or its buffer near its bound, a listener that cannot accept. Each change is also an alarm.activated / alarm.deactivated event for webhooks.')),
      h('div', { class: 'actions' }, active ? null : clear, h('button', { type: 'button', class: 'btn', onclick: () => table.reload() }, 'Refresh'))),
    h('div', { class: 'card' }, h('div', { class: 'toolbar' }, tabs), holder));
  return build().then(() => { ctx.el.dataset.loaded = 'true'; });
}
