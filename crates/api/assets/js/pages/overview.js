// Overview: the node, its gauges and message rates, with live charts (polled every 2 s;
// rates are computed from the counters of GET /metrics).

import { api } from '../api.js';
import { LineChart, RateMeter } from '../chart.js';
import { h, mount, stat } from '../dom.js';
import { num, rate, uptime } from '../format.js';
import { poll } from '../poll.js';

export function render(ctx) {
  ctx.crumbs([{ label: 'Overview' }]);
  const node = {
    name: stat('Node', { testid: 'overview-node', kind: 'text' }),
    uptime: stat('Uptime', { testid: 'overview-uptime' }),
    connections: stat('Connections', { testid: 'overview-connections', hint: 'open MQTT connections' }),
    sessions: stat('Sessions', { testid: 'overview-sessions', hint: 'connected or offline' }),
    subscriptions: stat('Subscriptions', { testid: 'overview-subscriptions' }),
    retained: stat('Retained messages', { testid: 'overview-retained' }),
  };
  const flow = {
    in: stat('Incoming messages', { testid: 'overview-rate-in', hint: 'per second' }),
    out: stat('Outgoing messages', { testid: 'overview-rate-out', hint: 'per second' }),
    received: stat('Messages received', { testid: 'overview-received', hint: 'since start' }),
    sent: stat('Messages sent', { testid: 'overview-sent', hint: 'since start' }),
    webhooks: stat('Webhooks', { testid: 'overview-webhooks' }),
    delivered: stat('Webhook requests', { testid: 'overview-webhook-success', hint: 'succeeded / failed' }),
  };
  const problem = h('div', { class: 'notice hidden', role: 'status' });
  const messagesCard = h('div', { class: 'card' }, h('h2', null, 'Message rates'));
  const hooksCard = h('div', { class: 'card' }, h('h2', null, 'Webhook requests'),
    h('p', { class: 'muted small' }, 'Per second, over all webhooks. ', h('a', { href: '/webhooks' }, 'Manage webhooks')));
  mount(ctx.el,
    h('div', { class: 'page-head' }, h('div', null, h('h1', null, 'Overview'), h('div', { class: 'sub' }, 'This node, live.'))),
    problem,
    h('div', { class: 'cards tight' }, Object.values(node).map((c) => c.el)),
    h('div', { class: 'cards tight' }, Object.values(flow).map((c) => c.el)),
    h('div', { class: 'grid2' }, messagesCard, hooksCard));

  const messages = new LineChart(messagesCard, {
    series: [{ name: 'Incoming/s', color: '#3b82f6' }, { name: 'Outgoing/s', color: '#00a86b' }],
    testid: 'overview-chart', label: 'Messages per second, incoming and outgoing', history: 'overview-messages',
  });
  const hooks = new LineChart(hooksCard, {
    series: [{ name: 'Success/s' }, { name: 'Failed/s' }],
    testid: 'overview-webhook-chart', label: 'Webhook requests per second', history: 'overview-webhooks',
  });
  ctx.onLeave(() => { messages.destroy(); hooks.destroy(); });
  const messageMeter = new RateMeter();
  const hookMeter = new RateMeter();

  async function refresh() {
    const [stats, metrics, nodes, webhooks] = await Promise.allSettled([
      api.get('/stats'), api.get('/metrics'), api.get('/nodes'), api.get('/webhooks'),
    ]);
    if (!ctx.current) return;
    const missing = [];
    for (const [label, result] of [['/stats', stats], ['/metrics', metrics], ['/nodes', nodes]]) {
      if (result.status === 'rejected') {
        if (result.reason?.status === 401) throw result.reason;
        missing.push(`${label} (${result.reason?.message ?? 'error'})`);
      }
    }
    problem.textContent = missing.length ? `Not available from this hookmq: ${missing.join(', ')}.` : '';
    problem.classList.toggle('hidden', missing.length === 0);

    if (nodes.status === 'fulfilled') {
      const n = Array.isArray(nodes.value) ? nodes.value[0] : nodes.value;
      node.name.set(n?.node ?? '—', `${n?.node_status ?? ''}${n?.version ? ` · hookmq ${n.version}` : ''}`);
      node.uptime.set(uptime(n?.uptime_ms));
    }
    if (stats.status === 'fulfilled') {
      const s = stats.value;
      node.connections.set(num(s.connections));
      node.sessions.set(num(s.sessions));
      node.subscriptions.set(num(s.subscriptions));
      node.retained.set(num(s.retained));
    }
    if (metrics.status === 'fulfilled') {
      const m = metrics.value;
      const received = m.messages_received ?? m['messages.received'];
      const sent = m.messages_sent ?? m['messages.sent'];
      flow.received.set(num(received));
      flow.sent.set(num(sent));
      const now = new Date();
      const perSecond = messageMeter.next([received, sent]);
      if (perSecond) {
        flow.in.set(rate(perSecond[0]));
        flow.out.set(rate(perSecond[1]));
        messages.push(now, perSecond);
      }
    }
    if (webhooks.status === 'fulfilled' && Array.isArray(webhooks.value)) {
      const list = webhooks.value;
      let success = 0;
      let failed = 0;
      for (const w of list) { success += w.metrics?.success ?? 0; failed += w.metrics?.failed ?? 0; }
      flow.webhooks.set(num(list.length), `${num(list.filter((w) => w.enable).length)} enabled`);
      flow.delivered.set(`${num(success)} / ${num(failed)}`);
      const perSecond = hookMeter.next([success, failed]);
      if (perSecond) hooks.push(new Date(), perSecond);
    }
    ctx.el.dataset.loaded = 'true';
  }

  ctx.onLeave(poll(refresh, 2000));
}
