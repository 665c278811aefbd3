// Clients: the list (search by client id, paged), one client's details and subscriptions,
// and kicking a client (with a confirmation).

import { api, ApiError, enc, query } from '../api.js';
import { confirmDialog, toast } from '../dialogs.js';
import { badge, debounce, h, mount } from '../dom.js';
import { num, protocol, time, yesNo } from '../format.js';
import { pagedTable } from './subscriptions.js';

const LIMIT = 50;

async function kick(clientid) {
  const yes = await confirmDialog({
    title: `Kick ${clientid}?`,
    message: 'The client is disconnected (reason "kicked"); it may connect again. A persistent session stays, offline.',
    confirmText: 'Kick',
    danger: true,
  });
  if (!yes) return false;
  try {
    await api.del(`/clients/${enc(clientid)}`);
    toast(`${clientid} kicked.`, 'good');
    return true;
  } catch (error) {
    toast(`Could not kick ${clientid}: ${error.message}`, 'bad');
    return false;
  }
}

const state = (c) => (c.connected ? badge('Connected', 'good') : badge('Disconnected', null));

export function renderList(ctx) {
  ctx.crumbs([{ label: 'Monitoring' }, { label: 'Clients' }]);
  const search = h('input', { type: 'search', placeholder: 'Search by client ID', 'aria-label': 'Search by client ID', 'data-testid': 'clients-search', value: ctx.query.get('like_clientid') ?? '' });
  const username = h('input', { type: 'search', placeholder: 'User name', 'aria-label': 'Search by user name', 'data-testid': 'clients-username' });
  const table = pagedTable({
    testid: 'clients-table',
    empty: 'No clients.',
    columns: [
      { label: 'Client ID', cell: (c) => h('a', { href: `/clients/${enc(c.clientid)}`, 'data-testid': 'client-link' }, c.clientid) },
      { label: 'Username', cell: (c) => c.username ?? '—' },
      { label: 'Status', cell: state },
      { label: 'IP address', cell: (c) => h('span', { class: 'mono' }, c.peername ?? '—') },
      { label: 'Protocol', cell: (c) => protocol(c.proto_ver) },
      { label: 'Keepalive (s)', cell: (c) => num(c.keepalive), num: true },
      { label: 'Subscriptions', cell: (c) => num(c.subscriptions_cnt), num: true },
      { label: 'Connected at', cell: (c) => time(c.connected_at) },
      {
        label: '',
        cell: (c) => (c.connected
          ? h('button', { type: 'button', class: 'btn link danger', 'data-testid': 'client-kick', onclick: async () => { if (await kick(c.clientid)) setTimeout(() => table.reload(), 300); } }, 'Kick')
          : null),
      },
    ],
    load: (page) => api.get(`/clients${query({ like_clientid: search.value.trim(), like_username: username.value.trim(), page, limit: LIMIT })}`),
  });
  const again = debounce(() => table.reload(1), 300);
  search.addEventListener('input', again);
  username.addEventListener('input', again);
  mount(ctx.el,
    h('div', { class: 'page-head' }, h('div', null, h('h1', null, 'Clients'), h('div', { class: 'sub' }, 'MQTT clients with a session on this node.')),
      h('div', { class: 'actions' }, h('button', { type: 'button', class: 'btn', 'data-testid': 'clients-refresh', onclick: () => table.reload() }, 'Refresh'))),
    h('div', { class: 'card' }, h('div', { class: 'toolbar' }, search, username), table.el));
  return table.reload(1).then(() => { ctx.el.dataset.loaded = 'true'; });
}

export async function renderDetail(ctx) {
  const id = ctx.params.id;
  ctx.crumbs([{ label: 'Monitoring' }, { label: 'Clients', href: '/clients' }, { label: id }]);
  let client;
  try {
    client = await api.get(`/clients/${enc(id)}`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      mount(ctx.el, h('div', { class: 'card empty', 'data-testid': 'client-missing' },
        h('h2', null, `No session for client ${id}`),
        h('p', null, error.missingRoute ? 'This hookmq does not serve client details yet.' : 'It disconnected and its session ended.'),
        h('a', { class: 'btn primary', href: '/clients' }, 'Back to the clients')));
      return;
    }
    throw error;
  }
  if (!ctx.current) return;
  const fields = [
    ['Client ID', client.clientid], ['Username', client.username ?? '—'], ['Status', state(client)],
    ['Node', client.node ?? '—'], ['IP address', client.peername], ['Listener address', client.sockname ?? '—'],
    ['Protocol', protocol(client.proto_ver)], ['Keepalive', `${client.keepalive} s`],
    ['Clean start', yesNo(client.clean_start)], ['Session expiry interval', `${client.expiry_interval ?? 0} s`],
    ['Connected at', time(client.connected_at)], ['Subscriptions', num(client.subscriptions_cnt)],
    ['Superuser', yesNo(client.is_superuser)], ['Mountpoint', client.mountpoint ?? '—'],
    ['Attributes', Object.entries(client.client_attrs ?? {}).map(([k, v]) => `${k}=${v}`).join(', ') || '—'],
  ];
  const subs = pagedTable({
    testid: 'client-subscriptions',
    empty: 'No subscriptions.',
    columns: [
      { label: 'Topic', cell: (s) => h('code', null, s.topic) },
      { label: 'QoS', cell: (s) => String(s.qos), num: true },
      { label: 'No local', cell: (s) => yesNo(s.no_local) },
      { label: 'Retain as published', cell: (s) => yesNo(s.retain_as_published) },
    ],
    load: (page) => api.get(`/subscriptions${query({ clientid: id, page, limit: LIMIT })}`),
  });
  mount(ctx.el,
    h('div', { class: 'page-head' },
      h('div', null, h('h1', null, id), h('div', { class: 'sub' }, protocol(client.proto_ver))),
      h('div', { class: 'actions' },
        client.connected ? h('button', {
          type: 'button', class: 'btn danger', 'data-testid': 'client-kick',
          onclick: async () => { if (await kick(id)) ctx.navigate('/clients'); },
        }, 'Kick') : null)),
    h('div', { class: 'card' }, h('h2', null, 'Connection'), h('dl', { class: 'props' }, fields.map(([k, v]) => [h('dt', null, k), h('dd', null, v)]))),
    h('div', { class: 'card' }, h('h2', null, 'Subscriptions'), subs.el));
  await subs.reload(1);
  ctx.el.dataset.loaded = 'true';
}
