// Data integration → Webhook: the list, with live counts and an enable switch per webhook.
// Also the helpers the details page shares (status, trigger summary, enable, delete).

import { api, enc } from '../api.js';
import { confirmDialog, toast } from '../dialogs.js';
import { badge, h, mount, setText, setToggle, toggle } from '../dom.js';
import { ALL_EVENTS, CLIENT_EVENTS, MESSAGE_EVENTS, titleOf } from '../events.js';
import { num, rate } from '../format.js';
import { poll } from '../poll.js';

export const CRUMBS = [{ label: 'Data integration' }, { label: 'Webhook', href: '/webhooks' }];

/** "All messages and events", "Messages: Message publish (t/#)", "Events: ...". */
export function triggerSummary(spec) {
  const events = spec.events ?? ['*'];
  if (events.includes('*')) return 'All messages and events';
  const messages = events.filter((e) => MESSAGE_EVENTS.some((m) => m.event === e));
  const clients = events.filter((e) => CLIENT_EVENTS.some((c) => c.event === e));
  const parts = [];
  if (messages.length) {
    const topics = (spec.topics ?? ['#']).join(', ');
    parts.push(`Messages: ${messages.map(titleOf).join(', ')} on ${topics}`);
  }
  if (clients.length) parts.push(`Events: ${clients.map(titleOf).join(', ')}`);
  const unknown = events.filter((e) => !ALL_EVENTS.some((k) => k.event === e));
  if (unknown.length) parts.push(unknown.join(', '));
  return parts.join('; ');
}

/**
 * Health from the metrics: disabled, failing (the last poll saw failures and no success,
 * or a failure in the last minute with none delivered), or running.
 */
export function statusOf(webhook) {
  const status = webhook.status ?? {};
  if (status.state === 'stopped' || !webhook.enable) return { text: 'Disabled', kind: null };
  if (status.state === 'disconnected') return { text: 'Disconnected', kind: 'bad', title: status.last_error };
  if (status.state === 'connecting') return { text: 'Connecting', kind: 'warn', title: status.last_error };
  if ((status.failures_in_a_row ?? 0) > 0) return { text: 'Retrying', kind: 'warn', title: status.last_error };
  return { text: 'Connected', kind: 'good' };
}

export async function setEnabled(name, enable) {
  try {
    await api.put(`/webhooks/${enc(name)}/enable/${enable}`);
    toast(`${name} ${enable ? 'enabled' : 'disabled'}.`, 'good');
    return true;
  } catch (error) {
    toast(`Could not ${enable ? 'enable' : 'disable'} ${name}: ${error.message}`, 'bad');
    return false;
  }
}

/** Asks, then deletes. Resolves true when deleted. */
export async function deleteWebhook(name) {
  const yes = await confirmDialog({
    title: `Delete webhook ${name}?`,
    message: 'It stops at once; events waiting in its queue are discarded. This cannot be undone.',
    confirmText: 'Delete',
    danger: true,
  });
  if (!yes) return false;
  try {
    await api.del(`/webhooks/${enc(name)}`);
    // A later webhook of the same name starts its chart afresh.
    sessionStorage.removeItem(`chart:webhook:${name}`);
    toast(`Webhook ${name} deleted.`, 'good');
    return true;
  } catch (error) {
    toast(`Could not delete ${name}: ${error.message}`, 'bad');
    return false;
  }
}

export function render(ctx) {
  ctx.crumbs([{ label: 'Data integration' }, { label: 'Webhook' }]);
  const create = h('a', { class: 'btn primary', href: '/webhooks/create', 'data-testid': 'webhook-create' }, '+ Create');
  const head = h('div', { class: 'page-head' },
    h('div', null,
      h('h1', null, 'Webhook'),
      h('div', { class: 'sub' }, 'Send MQTT messages and client events to your HTTP server, as EMQX does.')),
    h('div', { class: 'actions' }, create));

  const body = h('tbody');
  const table = h('table', { class: 'data', 'data-testid': 'webhook-table' },
    h('thead', null, h('tr', null,
      h('th', null, 'Name'), h('th', null, 'Note'), h('th', null, 'URL'), h('th', null, 'Status'),
      h('th', null, 'Enable'), h('th', { class: 'num' }, 'Success'), h('th', { class: 'num' }, 'Failed'),
      h('th', { class: 'num', title: 'Matched events per second' }, 'Rate/s'), h('th', { class: 'num' }, 'Actions'))),
    body);
  const empty = h('div', { class: 'empty hidden', 'data-testid': 'webhooks-empty' },
    h('p', null, 'No webhooks yet.'),
    h('p', { class: 'small' }, 'A webhook sends each selected message or event to your HTTP server as an EMQX-format JSON request.'),
    h('a', { class: 'btn primary', href: '/webhooks/create' }, 'Create a webhook'));
  const problem = h('div', { class: 'notice error hidden', role: 'alert' });
  const search = h('input', {
    type: 'search', placeholder: 'Search by name, note or URL', 'aria-label': 'Search webhooks',
    'data-testid': 'webhook-search', oninput: () => filter(),
  });
  const noMatch = h('p', { class: 'empty hidden', 'data-testid': 'webhooks-no-match' }, 'No webhook matches.');
  const toolbar = h('div', { class: 'toolbar hidden' }, search);
  const card = h('div', { class: 'card' }, problem, toolbar, h('div', { class: 'table-wrap' }, table), noMatch, empty);
  mount(ctx.el, head, card);

  const rows = new Map();
  let loaded = false;

  /** Shows only the rows whose name, note or URL holds what the search box says. */
  function filter() {
    const wanted = search.value.trim().toLowerCase();
    let shown = 0;
    for (const row of rows.values()) {
      const hit = !wanted || row.text.includes(wanted);
      row.tr.classList.toggle('hidden', !hit);
      if (hit) shown += 1;
    }
    noMatch.classList.toggle('hidden', shown > 0 || rows.size === 0);
  }

  function makeRow(w) {
    const name = w.name;
    const status = h('span');
    const cells = {
      note: h('td', { class: 'note' }),
      url: h('td', { class: 'url' }),
      success: h('td', { class: 'num', 'data-testid': 'webhook-success' }),
      failed: h('td', { class: 'num', 'data-testid': 'webhook-failed' }),
      rate: h('td', { class: 'num', 'data-testid': 'webhook-rate' }),
    };
    const sw = toggle({
      checked: w.enable,
      label: `Enable ${name}`,
      testid: 'webhook-enable',
      onchange: async (next) => {
        const ok = await setEnabled(name, next);
        if (ok) refresh();
        return ok;
      },
    });
    const tr = h('tr', { 'data-testid': `webhook-row-${name}`, 'data-name': name },
      h('td', null, h('a', { href: `/webhooks/detail/${enc(name)}`, 'data-testid': 'webhook-link' }, name)),
      cells.note, cells.url, h('td', { 'data-testid': 'webhook-status' }, status), h('td', null, sw),
      cells.success, cells.failed, cells.rate,
      h('td', { class: 'actions' },
        h('a', { class: 'btn link', href: `/webhooks/edit/${enc(name)}`, 'data-testid': 'webhook-settings' }, 'Settings'),
        h('a', { class: 'btn link', href: `/webhooks/create?from=${enc(name)}`, 'data-testid': 'webhook-duplicate' }, 'Duplicate'),
        h('button', {
          type: 'button', class: 'btn link danger', 'data-testid': 'webhook-delete',
          onclick: async () => { if (await deleteWebhook(name)) refresh(); },
        }, 'Delete')));
    return { tr, cells, status, sw };
  }

  function update(row, w) {
    setText(row.cells.note, w.description || '—');
    row.cells.note.title = w.description ?? '';
    const more = w.urls?.length ? ` (+${w.urls.length})` : '';
    setText(row.cells.url, `${(w.method ?? 'post').toUpperCase()} ${w.url}${more}`);
    row.cells.url.title = [w.url, ...(w.urls ?? [])].join('\n');
    const m = w.metrics ?? {};
    setText(row.cells.success, num(m.success));
    setText(row.cells.failed, num(m.failed));
    setText(row.cells.rate, rate(m.rate));
    const s = statusOf(w);
    mount(row.status, badge(s.text, s.kind));
    row.status.title = s.title ?? '';
    setToggle(row.sw, w.enable);
    row.text = [w.name, w.description ?? '', w.url, ...(w.urls ?? [])].join(' ').toLowerCase();
  }

  async function refresh() {
    let list;
    try {
      list = await api.get('/webhooks');
      problem.classList.add('hidden');
    } catch (error) {
      if (error.status === 401) throw error;
      problem.textContent = `Could not load the webhooks: ${error.message}`;
      problem.classList.remove('hidden');
      return;
    }
    if (!ctx.current) return;
    list.sort((a, b) => a.name.localeCompare(b.name));
    const names = new Set(list.map((w) => w.name));
    for (const [name, row] of rows) {
      if (!names.has(name)) { row.tr.remove(); rows.delete(name); }
    }
    list.forEach((w, i) => {
      let row = rows.get(w.name);
      if (!row) { row = makeRow(w); rows.set(w.name, row); }
      update(row, w);
      // Rows stay in name order; a row is moved only when it is out of place (moving a
      // node would take the focus away from its switch or links).
      if (body.children[i] !== row.tr) body.insertBefore(row.tr, body.children[i] ?? null);
    });
    empty.classList.toggle('hidden', list.length > 0);
    table.classList.toggle('hidden', list.length === 0);
    toolbar.classList.toggle('hidden', list.length === 0);
    filter();
    if (!loaded) { loaded = true; ctx.el.dataset.loaded = 'true'; }
  }

  ctx.onLeave(poll(refresh, 2000));
}
