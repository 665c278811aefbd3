// A webhook's details: live metrics (counts, rates, latency) with charts, its settings in
// short, the last failures with their reason, and its dead letters. Polls every 2 s.

import { api, ApiError, enc } from '../api.js';
import { BarChart, LineChart, RateMeter } from '../chart.js';
import { confirmDialog, toast } from '../dialogs.js';
import { badge, h, mount, setText, setToggle, stat, toggle } from '../dom.js';
import { titleOf } from '../events.js';
import { ms, num, rate, time } from '../format.js';
import { poll } from '../poll.js';
import { deadLettersCard } from './dead_letters.js';
import { CRUMBS, deleteWebhook, setEnabled, statusOf, triggerSummary } from './webhooks.js';

export async function render(ctx) {
  const name = ctx.params.name;
  ctx.crumbs([...CRUMBS, { label: name }]);

  let webhook;
  try {
    webhook = await api.get(`/webhooks/${enc(name)}`);
  } catch (error) {
    if (error.status === 404) {
      mount(ctx.el, h('div', { class: 'card empty', 'data-testid': 'webhook-missing' },
        h('h2', null, `No webhook named ${name}`),
        h('a', { class: 'btn primary', href: '/webhooks' }, 'Back to the list')));
      return;
    }
    throw error;
  }
  if (!ctx.current) return;

  // ---- header ----
  const status = h('span', { 'data-testid': 'webhook-status' });
  const sw = toggle({
    checked: webhook.enable, label: `Enable ${name}`, testid: 'webhook-enable',
    onchange: async (next) => {
      const ok = await setEnabled(name, next);
      if (ok) refresh();
      return ok;
    },
  });
  const probe = h('div', { class: 'probe hidden', role: 'status', 'aria-live': 'polite', 'data-testid': 'probe-result' });
  const testButton = h('button', { type: 'button', class: 'btn', 'data-testid': 'webhook-test', title: 'Send one sample message.publish request' }, 'Test');
  testButton.addEventListener('click', async () => {
    testButton.disabled = true;
    probe.className = 'probe';
    mount(probe, h('div', { class: 'muted' }, 'Sending a sample message.publish event…'));
    try {
      const r = await api.post(`/webhooks/${enc(name)}/test`);
      probe.className = `probe ${r.success ? 'ok' : 'fail'}`;
      mount(probe,
        h('div', { class: 'headline', 'data-testid': 'probe-headline' }, r.status
          ? `${r.success ? '✓' : '✗'} Receiver answered ${r.status} in ${r.latency_ms} ms`
          : `✗ No answer after ${r.latency_ms} ms`),
        r.error && !r.status ? h('div', null, r.error) : null,
        r.body ? h('pre', null, r.body) : null);
    } catch (error) {
      if (!(error instanceof ApiError) || error.status === 401) throw error;
      probe.className = 'probe fail';
      mount(probe, h('div', { class: 'headline' }, `✗ ${error.message}`));
    } finally {
      testButton.disabled = false;
    }
  });
  const head = h('div', { class: 'page-head' },
    h('div', null,
      h('div', { class: 'row' }, h('h1', { 'data-testid': 'webhook-title' }, name), status, sw),
      h('div', { class: 'sub', 'data-testid': 'webhook-note' }, webhook.description || 'No note')),
    h('div', { class: 'actions' },
      testButton,
      h('a', { class: 'btn', href: `/webhooks/edit/${enc(name)}`, 'data-testid': 'webhook-settings' }, 'Settings'),
      h('button', {
        type: 'button', class: 'btn', 'data-testid': 'webhook-reset',
        onclick: async () => {
          const yes = await confirmDialog({ title: 'Reset the metrics?', message: `All counters of ${name} go back to zero.`, confirmText: 'Reset' });
          if (!yes) return;
          try {
            await api.put(`/webhooks/${enc(name)}/metrics/reset`);
            meter = new RateMeter();
            chart.clear();
            toast('Metrics reset.', 'good');
            refresh();
          } catch (error) {
            toast(`Could not reset: ${error.message}`, 'bad');
          }
        },
      }, 'Reset metrics'),
      h('button', {
        type: 'button', class: 'btn danger', 'data-testid': 'webhook-delete',
        onclick: async () => { if (await deleteWebhook(name)) ctx.navigate('/webhooks'); },
      }, 'Delete')));

  // ---- settings in short ----
  const props = h('dl', { class: 'props' });
  function showSettings(w) {
    const headers = Object.entries(w.headers ?? {});
    mount(props,
      h('dt', null, 'Request'), h('dd', { class: 'mono', 'data-testid': 'webhook-url' }, `${(w.method ?? 'post').toUpperCase()} ${w.url}`),
      w.urls?.length ? h('dt', null, 'More URLs') : null,
      w.urls?.length ? h('dd', { 'data-testid': 'webhook-urls' }, `${w.urls.length} more, ${w.url_strategy === 'failover' ? 'failover: the first that answers' : 'round robin: lanes shared'}`) : null,
      h('dt', null, 'Trigger'), h('dd', { 'data-testid': 'webhook-trigger' }, triggerSummary(w)),
      h('dt', null, 'Headers'), h('dd', null, headers.length ? headers.map(([k, v]) => h('span', { class: 'tag' }, `${k}: ${v}`)) : '—'),
      h('dt', null, 'Body'), h('dd', null, w.body ? h('code', null, w.body) : 'The whole event as JSON (EMQX format)'),
      h('dt', null, 'Delivery'), h('dd', null,
        `${w.max_inflight} lanes × ${w.pipelining} pipelined${w.ordered ? ', in order per client' : ', unordered'}; retries for ${w.retry_max_age}${w.max_retries === null ? '' : ` (at most ${w.max_retries})`} (${w.retry_backoff} → ${w.retry_max_backoff}); queue of ${num(w.queue_capacity)}${(w.batch?.max_events ?? 1) > 1 ? `; batches of up to ${num(w.batch.max_events)} (${w.batch.format === 'ndjson' ? 'NDJSON' : 'JSON array'}, waiting ${w.batch.max_wait})` : ''}`),
      h('dt', null, 'Signed'), h('dd', null, w.signing_secret ? 'Yes (Standard Webhooks)' : 'No'));
  }

  // ---- metrics ----
  const cards = {
    matched: stat('Matched', { testid: 'metric-matched', hint: 'events selected by the trigger' }),
    success: stat('Success', { testid: 'metric-success', kind: 'good', hint: 'answered 2xx' }),
    failed: stat('Failed', { testid: 'metric-failed', kind: 'bad', hint: 'gave up' }),
    retried: stat('Retried', { testid: 'metric-retried', hint: 'retry attempts' }),
    dropped: stat('Dropped', { testid: 'metric-dropped' }),
    queuing: stat('Queuing', { testid: 'metric-queuing', hint: 'waiting now' }),
    inflight: stat('In flight', { testid: 'metric-inflight', hint: 'being sent now' }),
  };
  const rates = {
    now: stat('Rate', { testid: 'metric-rate', hint: 'matched/s, last 5 s' }),
    max: stat('Highest rate', { testid: 'metric-rate-max', hint: 'matched/s' }),
    last5m: stat('Rate, last 5 min', { testid: 'metric-rate-last5m', hint: 'matched/s' }),
  };
  const latency = {
    p50: stat('Latency p50', { testid: 'metric-p50' }),
    p90: stat('Latency p90', { testid: 'metric-p90' }),
    p99: stat('Latency p99', { testid: 'metric-p99' }),
    mean: stat('Mean latency', { testid: 'metric-mean' }),
  };

  const chartCard = h('div', { class: 'card' }, h('h2', null, 'Requests per second'));
  const latencyCard = h('div', { class: 'card' }, h('h2', null, 'Latency distribution'),
    h('div', { class: 'cards' }, Object.values(latency).map((c) => c.el)));
  const failures = h('tbody');
  const failuresEmpty = h('div', { class: 'empty', 'data-testid': 'failures-empty' }, 'No failures.');
  const failuresTable = h('table', { class: 'data hidden', 'data-testid': 'failures-table' },
    h('thead', null, h('tr', null, h('th', null, 'Time'), h('th', null, 'Event'), h('th', null, 'Status'),
      h('th', null, 'Reason'), h('th', { class: 'num' }, 'Attempts'))),
    failures);
  // Each receiver, when there are several (one is the status badge itself).
  const receiverRows = h('tbody');
  const receiversCard = h('div', { class: 'card hidden', 'data-testid': 'receivers-card' }, h('h2', null, 'Receivers'),
    h('div', { class: 'table-wrap' }, h('table', { class: 'data', 'data-testid': 'receivers-table' },
      h('thead', null, h('tr', null, h('th', null, 'URL'), h('th', null, 'Status'), h('th', { class: 'num' }, 'Lanes'),
        h('th', { class: 'num' }, 'Delivered'), h('th', { class: 'num' }, 'Failed requests'), h('th', null, 'Last error'))),
      receiverRows)));
  function showReceivers(w) {
    const list = w.receivers ?? [];
    receiversCard.classList.toggle('hidden', list.length < 2);
    mount(receiverRows, list.map((r) => {
      const s = statusOf({ enable: w.enable, status: r });
      return h('tr', { 'data-testid': 'receiver-row' },
        h('td', { class: 'mono' }, r.url),
        h('td', { title: s.title ?? '' }, badge(s.text, s.kind)),
        h('td', { class: 'num' }, num(r.lanes)),
        h('td', { class: 'num' }, num(r.delivered)),
        h('td', { class: 'num' }, `${num(r.failed_requests)} of ${num(r.requests)}`),
        h('td', null, r.last_error ?? ''));
    }));
  }
  const problem = h('div', { class: 'notice error hidden', role: 'alert' });
  const deadLetters = deadLettersCard(name, () => refresh());
  const attemptRows = h('tbody');
  const attemptsEmpty = h('div', { class: 'empty', 'data-testid': 'attempts-empty' }, 'No attempts yet.');
  const attemptsTable = h('table', { class: 'data hidden', 'data-testid': 'attempts-table' },
    h('thead', null, h('tr', null, h('th', null, 'Time'), h('th', null, 'Event'), h('th', null, 'Status'),
      h('th', { class: 'num' }, 'Latency'), h('th', null, 'Error'))),
    attemptRows);
  async function showAttempts() {
    const list = await api.get(`/webhooks/${enc(name)}/attempts?limit=20`);
    attemptsTable.classList.toggle('hidden', list.length === 0);
    attemptsEmpty.classList.toggle('hidden', list.length > 0);
    mount(attemptRows, list.map((a) => h('tr', { 'data-testid': 'attempt-row', title: a.webhook_id },
      h('td', { class: 'nowrap' }, time(a.at)),
      h('td', { title: a.event }, titleOf(a.event)),
      h('td', null, a.status ?? '—'),
      h('td', { class: 'num' }, ms(a.latency_ms)),
      h('td', null, a.error ?? ''))));
  }

  mount(ctx.el, head, probe, problem,
    h('div', { class: 'cards tight' }, Object.values(cards).map((c) => c.el)),
    h('div', { class: 'cards' }, Object.values(rates).map((c) => c.el)),
    chartCard,
    receiversCard,
    h('div', { class: 'grid2' },
      latencyCard,
      h('div', { class: 'card' }, h('h2', null, 'Settings'), props)),
    h('div', { class: 'card' }, h('h2', null, 'Last failures'), h('div', { class: 'table-wrap' }, failuresTable), failuresEmpty),
    h('div', { class: 'card' }, h('h2', null, 'Recent attempts'), h('div', { class: 'table-wrap' }, attemptsTable), attemptsEmpty),
    deadLetters.el);

  const chart = new LineChart(chartCard, {
    series: [{ name: 'Success/s' }, { name: 'Failed/s' }, { name: 'Matched/s' }],
    label: 'Requests per second: success, failed and matched',
    testid: 'webhook-chart',
    history: `webhook:${name}`,
  });
  const histogram = new BarChart(latencyCard, { height: 150, label: 'Requests by latency', testid: 'latency-chart', format: num });
  let meter = new RateMeter();

  function show(w) {
    const m = w.metrics ?? {};
    cards.matched.set(num(m.matched));
    cards.success.set(num(m.success));
    cards.failed.set(num(m.failed));
    cards.failed.el.classList.toggle('zero', !m.failed);
    cards.retried.set(num(m.retried));
    cards.dropped.set(num(m.dropped), `queue full: ${num(m['dropped.queue_full'] ?? 0)}, expired: ${num(m['dropped.expired'] ?? 0)}${m.late_reply ? `; late replies: ${num(m.late_reply)}` : ''}`);
    cards.queuing.set(num(m.queuing));
    cards.inflight.set(num(m.inflight));
    rates.now.set(rate(m.rate));
    rates.max.set(rate(m.rate_max));
    rates.last5m.set(rate(m.rate_last5m));
    const l = m.latency ?? {};
    latency.p50.set(l.count ? ms(l.p50_ms) : '—', `${num(l.count ?? 0)} requests`);
    latency.p90.set(l.count ? ms(l.p90_ms) : '—');
    latency.p99.set(l.count ? ms(l.p99_ms) : '—');
    latency.mean.set(l.count ? ms(l.mean_ms) : '—');
    const bounds = l.bounds_ms ?? [];
    const buckets = l.buckets ?? [];
    const labels = buckets.map((_, i) => (i < bounds.length ? `≤${ms(bounds[i]).replace(' ', '')}` : `>${ms(bounds.at(-1) ?? 0).replace(' ', '')}`));
    // Show the buckets up to the slowest one used (at least 8), not 30 s of empty bars.
    let used = buckets.length;
    while (used > 8 && !buckets[used - 1]) used -= 1;
    histogram.set(labels.slice(0, used), buckets.slice(0, used));

    showReceivers(w);
    const s = statusOf(w);
    mount(status, badge(s.text, s.kind));
    status.title = s.title ?? '';
    setToggle(sw, w.enable);
    setText(head.querySelector('[data-testid="webhook-note"]'), w.description || 'No note');

    const list = m.last_failures ?? [];
    failuresTable.classList.toggle('hidden', list.length === 0);
    failuresEmpty.classList.toggle('hidden', list.length > 0);
    mount(failures, list.map((f) => h('tr', { 'data-testid': 'failure-row' },
      h('td', { class: 'nowrap' }, time(f.at)),
      h('td', { title: f.event }, titleOf(f.event)),
      h('td', null, f.status ?? '—'),
      h('td', null, f.reason),
      h('td', { class: 'num' }, num(f.attempts)))));

    deadLetters.refresh(m.dead_letters ?? 0).catch((error) => {
      if (error.status === 401) throw error;
    });
    showAttempts().catch((error) => {
      if (error.status === 401) throw error;
    });

    const perSecond = meter.next([m.success, m.failed, m.matched]);
    if (perSecond) chart.push(new Date(), perSecond);
  }

  showSettings(webhook);
  show(webhook);
  ctx.el.dataset.loaded = 'true';

  let settingsShown = JSON.stringify({ ...webhook, metrics: undefined, status: undefined, receivers: undefined });
  async function refresh() {
    let w;
    try {
      w = await api.get(`/webhooks/${enc(name)}`);
      problem.classList.add('hidden');
    } catch (error) {
      if (error.status === 401) throw error;
      problem.textContent = error.status === 404
        ? `${name} no longer exists.`
        : `Could not refresh: ${error.message}`;
      problem.classList.remove('hidden');
      return;
    }
    if (!ctx.current) return;
    const settings = JSON.stringify({ ...w, metrics: undefined, status: undefined, receivers: undefined });
    if (settings !== settingsShown) { showSettings(w); settingsShown = settings; }
    show(w);
  }
  ctx.onLeave(poll(refresh, 2000, { immediate: false }));
  ctx.onLeave(() => { chart.destroy(); histogram.destroy(); });
}
