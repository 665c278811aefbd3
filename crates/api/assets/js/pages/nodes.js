// Nodes: every node of the cluster (this one alone without [cluster]), each with its
// version, uptime, connections and subscriptions, and the cluster's NATS connection
// (polled every 5 s).

import { api } from '../api.js';
import { h, mount } from '../dom.js';
import { num, uptime } from '../format.js';
import { poll } from '../poll.js';

export function render(ctx) {
  ctx.crumbs([{ label: 'Monitoring' }, { label: 'Nodes' }]);
  const body = h('tbody');
  const status = h('div', { class: 'sub', 'data-testid': 'nodes-cluster' }, '');
  const problem = h('div', { class: 'notice error hidden', role: 'alert' });
  const columns = ['Node', 'Status', 'Version', 'Uptime', 'Connections', 'Subscriptions'];
  const table = h('table', { class: 'data', 'data-testid': 'nodes-table' },
    h('thead', null, h('tr', null, columns.map((label, i) => h('th', { class: i >= 4 ? 'num' : null }, label)))),
    body);
  mount(ctx.el,
    h('div', { class: 'page-head' },
      h('div', null, h('h1', null, 'Nodes'), status),
      h('div', { class: 'actions' }, h('button', { type: 'button', class: 'btn', onclick: () => refresh() }, 'Refresh'))),
    h('div', { class: 'card' }, problem, h('div', { class: 'table-wrap' }, table)));

  async function refresh() {
    let nodes;
    let cluster = null;
    try {
      [nodes, cluster] = await Promise.all([api.get('/nodes'), api.get('/cluster').catch(() => null)]);
      problem.classList.add('hidden');
    } catch (error) {
      if (error.status === 401) throw error;
      problem.textContent = `Could not load the nodes: ${error.message}`;
      problem.classList.remove('hidden');
      return;
    }
    const list = Array.isArray(nodes) ? nodes : [];
    mount(body, list.map((n) => h('tr', { 'data-testid': 'node-row' },
      h('td', null, n.node),
      h('td', null, n.node_status ?? 'running'),
      h('td', null, n.version ?? '—'),
      h('td', null, uptime(n.uptime_ms ?? 0)),
      h('td', { class: 'num' }, num(n.connections ?? 0)),
      h('td', { class: 'num' }, num(n.subscriptions ?? 0)))));
    status.textContent = cluster?.clustered
      ? `A cluster of ${num(list.length)} node${list.length === 1 ? '' : 's'} on NATS (${cluster.nats})`
      : 'A single node (set [cluster] nats_url to join a cluster).';
    ctx.el.dataset.loaded = 'true';
  }

  ctx.onLeave(poll(refresh, 5000));
}
