// A webhook's dead letters on its details page: the events it gave up, newest first, with
// their last attempt; replay one or all once the receiver is fixed, or purge them.

import { api, enc } from '../api.js';
import { confirmDialog, toast } from '../dialogs.js';
import { h, mount } from '../dom.js';
import { titleOf } from '../events.js';
import { num, time } from '../format.js';

/** Dead letters shown at most (the newest). */
const SHOWN = 20;

/**
 * The card. `refresh(count)` reloads the list when the webhook's dead letter count changed
 * (the details page polls its metrics); `onChange` runs after a replay or a purge.
 */
export function deadLettersCard(name, onChange) {
  const heading = h('h2', null, 'Dead letters');
  const rows = h('tbody');
  const table = h('table', { class: 'data hidden', 'data-testid': 'dead-letters-table' },
    h('thead', null, h('tr', null, h('th', null, 'Failed at'), h('th', null, 'Event'), h('th', null, 'Client'),
      h('th', null, 'Status'), h('th', null, 'Reason'), h('th', null, ''))),
    rows);
  const empty = h('div', { class: 'empty', 'data-testid': 'dead-letters-empty' },
    'No dead letters: events the receiver refuses, or that stay undelivered past the retry time, are kept here to replay.');
  const more = h('div', { class: 'muted hidden', 'data-testid': 'dead-letters-more' });
  const replayAll = h('button', { type: 'button', class: 'btn', 'data-testid': 'dead-letters-replay', disabled: true }, 'Replay all');
  const purge = h('button', { type: 'button', class: 'btn danger', 'data-testid': 'dead-letters-purge', disabled: true }, 'Purge');
  const el = h('div', { class: 'card', 'data-testid': 'dead-letters' },
    h('div', { class: 'row between' }, heading, h('div', { class: 'actions' }, replayAll, purge)),
    h('div', { class: 'table-wrap' }, table), empty, more);

  let shownCount = null;

  async function replay(ids) {
    try {
      const r = await api.post(`/webhooks/${enc(name)}/dead_letters/replay`, ids ? { ids } : {});
      toast(`${num(r.replayed)} replayed${r.left ? `, ${num(r.left)} left (the queue is full)` : ''}.`, r.left ? 'bad' : 'good');
    } catch (error) {
      toast(`Could not replay: ${error.message}`, 'bad');
    }
    shownCount = null;
    onChange();
  }

  replayAll.addEventListener('click', () => replay(null));
  purge.addEventListener('click', async () => {
    const yes = await confirmDialog({
      title: 'Purge the dead letters?', message: `Every dead letter of ${name} is deleted; they cannot be replayed after.`,
      confirmText: 'Purge', danger: true,
    });
    if (!yes) return;
    try {
      const r = await api.del(`/webhooks/${enc(name)}/dead_letters`);
      toast(`${num(r.purged)} dead letters deleted.`, 'good');
    } catch (error) {
      toast(`Could not purge: ${error.message}`, 'bad');
    }
    shownCount = null;
    onChange();
  });

  async function refresh(count) {
    if (count === shownCount) return;
    const page = await api.get(`/webhooks/${enc(name)}/dead_letters?limit=${SHOWN}`);
    shownCount = count;
    const letters = page.data ?? [];
    const total = page.meta?.count ?? letters.length;
    heading.textContent = total ? `Dead letters (${num(total)})` : 'Dead letters';
    table.classList.toggle('hidden', letters.length === 0);
    empty.classList.toggle('hidden', letters.length > 0);
    more.classList.toggle('hidden', total <= letters.length);
    more.textContent = `The newest ${letters.length} of ${num(total)}; hookmq ctl webhooks dead-letters list ${name} shows them all.`;
    replayAll.disabled = purge.disabled = total === 0;
    mount(rows, letters.map((l) => h('tr', { 'data-testid': 'dead-letter-row' },
      h('td', { class: 'nowrap' }, time(l.failed_at)),
      h('td', { title: l.event }, titleOf(l.event)),
      h('td', null, l.body?.clientid ?? '—'),
      h('td', null, l.status ?? '—'),
      h('td', { title: `${l.reason} (${num(l.attempts)} attempts)` }, l.reason.length > 40 ? `${l.reason.slice(0, 40)}…` : l.reason),
      h('td', { class: 'actions' }, h('button', {
        type: 'button', class: 'btn small', 'data-testid': 'dead-letter-replay',
        onclick: () => replay([l.id]),
      }, 'Replay')))));
  }

  return { el, refresh };
}
