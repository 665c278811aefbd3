// Create and edit a webhook: name and note, trigger (all / messages / events), method and URL
// with a Test button, headers, body template with the available fields, advanced settings.
// Errors from the API (400 with `field`) are shown at the field.

import { api, ApiError, enc } from '../api.js';
import { confirmDialog, toast } from '../dialogs.js';
import { h, mount } from '../dom.js';
import { CLIENT_EVENTS, loadCatalogue, MESSAGE_EVENTS } from '../events.js';
import { CRUMBS } from './webhooks.js';

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;
const REDACTED = '******';

/** The API's defaults (crates/webhooks/src/spec.rs). */
function defaults() {
  return {
    name: '', description: '', enable: true, events: ['*'], topics: ['#'], method: 'post', url: '',
    headers: { 'content-type': 'application/json' }, body: null, payload_encoding: 'plain',
    signing_secret: null, connect_timeout: '15s', request_timeout: '15s', pool_size: 8,
    max_inflight: 16, pipelining: 16, ordered: true, retry_max_age: '24h', max_retries: null, retry_backoff: '1s', retry_max_backoff: '1m',
    queue_capacity: 10000, buffer: 'disk', max_buffer_bytes: 1073741824, overflow: 'drop_new', sync_before_ack: false,
    health_check_interval: '15s', max_dead_letter_bytes: 67108864, tls: { verify: true, ca_file: null, certfile: null, keyfile: null },
  };
}

function triggerMode(events) {
  if (!events.length || events.includes('*')) return 'all';
  const messages = events.every((e) => MESSAGE_EVENTS.some((m) => m.event === e));
  const clients = events.every((e) => CLIENT_EVENTS.some((c) => c.event === e));
  if (messages) return 'messages';
  if (clients) return 'events';
  return 'custom';
}

/** "topics[2]" → "topics", "tls.keyfile" → "tls", "name" → "". */
function parentField(field) {
  const cut = Math.max(field.lastIndexOf('['), field.lastIndexOf('.'));
  return cut > 0 ? field.slice(0, cut) : '';
}

function randomSecret() {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return `whsec_${btoa(String.fromCharCode(...bytes))}`;
}

export async function render(ctx) {
  const editing = ctx.params.name !== undefined;
  const original = editing ? ctx.params.name : null;
  // Create?from=<name>: a new webhook starting as a copy of another.
  const copyOf = editing ? null : ctx.query?.get('from') ?? null;
  ctx.crumbs(editing
    ? [...CRUMBS, { label: original, href: `/webhooks/detail/${enc(original)}` }, { label: 'Settings' }]
    : [...CRUMBS, { label: copyOf ? `Duplicate ${copyOf}` : 'Create' }]);

  let spec = defaults();
  let secretsLeftOut = false;
  const source = original ?? copyOf;
  if (source !== null) {
    try {
      const loaded = await api.get(`/webhooks/${enc(source)}`);
      delete loaded.metrics;
      delete loaded.status;
      spec = { ...defaults(), ...loaded, tls: { ...defaults().tls, ...(loaded.tls ?? {}) } };
    } catch (error) {
      if (error.status === 404) {
        mount(ctx.el, h('div', { class: 'card empty' }, h('h2', null, `No webhook named ${source}`),
          h('a', { class: 'btn primary', href: '/webhooks' }, 'Back to the list')));
        return;
      }
      throw error;
    }
  }
  if (copyOf !== null) {
    // Secrets come back as ****** and are not copied: the copy asks for them again.
    spec.name = `${copyOf}-copy`;
    if (spec.signing_secret) { spec.signing_secret = null; secretsLeftOut = true; }
    for (const [key, value] of Object.entries(spec.headers ?? {})) {
      if (value === '******') { spec.headers[key] = ''; secretsLeftOut = true; }
    }
  }
  if (!ctx.current) return;

  // ---- field registry and errors ----
  const registry = new Map(); // field name → { wrap, control, error }
  const formError = h('div', { class: 'notice error hidden', role: 'alert', 'data-testid': 'form-error' });

  function field({ name, label, control, help, required, testid }) {
    const error = h('div', { class: 'field-error hidden', role: 'alert', 'data-testid': `field-error-${name}` });
    if (control && !control.id && ['INPUT', 'SELECT', 'TEXTAREA'].includes(control.tagName)) control.id = `f-${name.replace(/[^a-z0-9]+/gi, '-')}`;
    // The required mark stays outside the <label>, so the field's accessible name is its label.
    const mark = required ? h('span', { class: 'req', 'aria-hidden': 'true', title: 'required' }, '*') : null;
    const labelEl = label
      ? h('div', { class: 'label' }, control?.id ? h('label', { for: control.id }, label) : label, mark)
      : null;
    if (required && control?.tagName === 'INPUT') control.setAttribute('aria-required', 'true');
    const wrap = h('div', { class: 'field', 'data-field': name, 'data-testid': testid }, labelEl, control,
      help ? h('div', { class: 'help' }, help) : null, error);
    registry.set(name, { wrap, control, error });
    return wrap;
  }

  function clearErrors() {
    formError.classList.add('hidden');
    for (const el of ctx.el.querySelectorAll('.field-error')) { el.textContent = ''; el.classList.add('hidden'); }
    for (const el of ctx.el.querySelectorAll('[aria-invalid="true"]')) el.setAttribute('aria-invalid', 'false');
  }

  /** Puts `message` at the form field named by the API's `field`; returns the element. */
  function showError(fieldName, message) {
    // "url: reason at line 1 column 9" → "reason" (the field is shown by the place).
    const bare = message.replace(/ at line \d+ column \d+$/, '');
    const text = fieldName && bare.startsWith(`${fieldName}: `) ? bare.slice(fieldName.length + 2) : bare;
    let target = null;
    const header = /^headers\.(.+)$/.exec(fieldName ?? '');
    const topic = /^topics\[(\d+)\]$/.exec(fieldName ?? '');
    if (header) target = headerRows.find((r) => r.key.value.trim().toLowerCase() === header[1].toLowerCase()) ?? null;
    if (topic) target = topicRows[Number(topic[1])] ?? null;
    let key = fieldName ?? '';
    while (!target && key) {
      if (registry.has(key)) target = registry.get(key);
      else key = parentField(key);
    }
    if (!target) {
      formError.textContent = fieldName ? `${fieldName}: ${text}` : text;
      formError.classList.remove('hidden');
      return formError;
    }
    target.error.textContent = text;
    target.error.classList.remove('hidden');
    const control = target.control ?? target.key;
    control?.setAttribute?.('aria-invalid', 'true');
    const inAdvanced = target.error.closest('details');
    if (inAdvanced) inAdvanced.open = true;
    return target.error;
  }

  function reveal(el) {
    el?.scrollIntoView?.({ block: 'center', behavior: 'instant' });
    const focusable = el?.closest('.field, .kv-row, .list-row')?.querySelector('input, select, textarea');
    focusable?.focus();
  }

  // ---- basic ----
  const nameInput = h('input', { type: 'text', value: spec.name, disabled: editing, placeholder: 'my_webhook', autocomplete: 'off', 'data-testid': 'webhook-name', maxlength: 128 });
  const noteInput = h('input', { type: 'text', value: spec.description ?? '', placeholder: 'What it is for', 'data-testid': 'webhook-note', maxlength: 4096 });
  const basic = h('section', { class: 'section', 'aria-labelledby': 'sec-basic' },
    h('h2', { id: 'sec-basic' }, 'Basic information'),
    h('div', { class: 'fields2' },
      field({ name: 'name', label: 'Name', control: nameInput, required: true, help: editing ? 'A webhook cannot be renamed.' : 'Letters, digits, - and _, starting with a letter or digit. Sent as metadata.rule_id.' }),
      field({ name: 'description', label: 'Note', control: noteInput, help: 'Optional, for people.' })));

  // ---- trigger ----
  let mode = triggerMode(spec.events);
  const checked = new Set(spec.events.includes('*') ? [] : spec.events);
  const choiceEls = [];
  const choice = (value, title, desc) => {
    const input = h('input', { type: 'radio', name: 'trigger', value, checked: mode === value, 'data-testid': `trigger-${value}` });
    const el = h('label', { class: ['choice', mode === value && 'selected'] }, input,
      h('div', null, h('div', { class: 'title' }, title), h('div', { class: 'desc' }, desc)));
    input.addEventListener('change', () => { if (input.checked) setMode(value); });
    choiceEls.push({ value, el, input });
    return el;
  };
  const eventBox = (e) => {
    const input = h('input', { type: 'checkbox', value: e.event, checked: checked.has(e.event), 'data-testid': `event-${e.event}` });
    input.addEventListener('change', () => {
      if (input.checked) checked.add(e.event); else checked.delete(e.event);
      refreshFields();
    });
    return h('label', { class: 'check', title: e.description }, input, e.title);
  };

  // topic filters
  const topicList = h('div', { 'data-testid': 'topic-list' });
  const topicRows = [];
  function addTopic(value = '') {
    const input = h('input', { type: 'text', value, placeholder: 't/#', 'aria-label': 'Topic filter', 'data-testid': 'topic-input' });
    const error = h('div', { class: 'field-error hidden', role: 'alert' });
    const row = { key: input, control: input, error, el: null };
    row.el = h('div', { class: 'list-row' }, input,
      h('button', {
        type: 'button', class: 'icon-btn', 'aria-label': 'Remove this topic filter', title: 'Remove',
        onclick: () => { topicRows.splice(topicRows.indexOf(row), 1); row.el.remove(); },
      }, '✕'), error);
    topicRows.push(row);
    topicList.append(row.el);
    return input;
  }
  (spec.topics?.length ? spec.topics : ['#']).forEach((t) => addTopic(t));

  const messagesPanel = h('div', { class: 'subpanel', 'data-testid': 'trigger-messages-panel' },
    field({ name: 'message_events', label: 'Messages', control: h('div', null, MESSAGE_EVENTS.map(eventBox)) }),
    field({
      name: 'topics', label: 'Topic filters',
      help: 'Only messages on these topics trigger the webhook; + and # wildcards allowed (# does not match $ topics).',
      control: h('div', null, topicList,
        h('button', { type: 'button', class: 'btn small', 'data-testid': 'topic-add', onclick: () => addTopic('').focus() }, '+ Add topic filter')),
    }));
  const eventsPanel = h('div', { class: 'subpanel', 'data-testid': 'trigger-events-panel' },
    field({ name: 'client_events', label: 'Events', control: h('div', null, CLIENT_EVENTS.map(eventBox)) }));

  function setMode(value) {
    mode = value;
    for (const c of choiceEls) {
      c.el.classList.toggle('selected', c.value === value);
      c.input.checked = c.value === value;
    }
    messagesPanel.classList.toggle('hidden', !(value === 'messages' || value === 'custom'));
    eventsPanel.classList.toggle('hidden', !(value === 'events' || value === 'custom'));
    if (value === 'messages' && !MESSAGE_EVENTS.some((e) => checked.has(e.event))) {
      checked.add('message.publish');
      messagesPanel.querySelector('[value="message.publish"]').checked = true;
    }
    refreshFields();
  }

  const choices = [
    choice('all', 'All messages and events', 'Every message and every client event.'),
    choice('messages', 'Messages', 'Chosen message events, on chosen topics.'),
    choice('events', 'Events', 'Chosen client and session events.'),
  ];
  if (mode === 'custom') choices.push(choice('custom', 'Messages and events', 'A mix set up through the API or the configuration file.'));
  const trigger = h('section', { class: 'section', 'aria-labelledby': 'sec-trigger' },
    h('h2', { id: 'sec-trigger' }, 'Trigger'),
    field({ name: 'events', control: h('div', { class: 'choices', role: 'radiogroup', 'aria-label': 'Trigger' }, choices) }),
    messagesPanel, eventsPanel);

  // ---- request ----
  const method = h('select', { 'data-testid': 'webhook-method', 'aria-label': 'Method' },
    ['post', 'put', 'get', 'delete'].map((m) => h('option', { value: m, selected: spec.method === m }, m.toUpperCase())));
  const url = h('input', { type: 'text', 'aria-required': 'true', value: spec.url, placeholder: 'http://localhost:5000', autocomplete: 'off', spellcheck: 'false', 'data-testid': 'webhook-url', 'aria-label': 'URL' });
  const testButton = h('button', { type: 'button', class: 'btn', 'data-testid': 'webhook-test', title: 'Send one sample message.publish request with these settings' }, 'Test');
  const probe = h('div', { class: 'probe hidden', role: 'status', 'aria-live': 'polite', 'data-testid': 'probe-result' });
  const urlField = field({
    name: 'url', label: 'Method and URL', required: true,
    control: h('div', null, h('div', { class: 'url-row' }, method, url, testButton), probe),
    help: 'http:// or https://; ${field} placeholders are allowed in the path and the query, e.g. http://host/hooks/${clientid}. Test sends one sample message.publish event and shows the answer.',
  });
  registry.set('method', { wrap: urlField, control: method, error: registry.get('url').error });
  registry.get('url').control = url;

  // headers
  const headerList = h('div', { 'data-testid': 'header-list' });
  const headerRows = [];
  function addHeader(key = '', value = '') {
    const keyInput = h('input', { type: 'text', value: key, placeholder: 'Header name', 'aria-label': 'Header name', 'data-testid': 'header-key' });
    const valueInput = h('input', { type: 'text', value, placeholder: 'Value (placeholders allowed)', 'aria-label': 'Header value', 'data-testid': 'header-value' });
    const error = h('div', { class: 'field-error hidden', role: 'alert' });
    const row = { key: keyInput, value: valueInput, control: keyInput, error, el: null };
    row.el = h('div', { class: 'kv-row' }, keyInput, valueInput,
      h('button', {
        type: 'button', class: 'icon-btn', 'aria-label': 'Remove this header', title: 'Remove',
        onclick: () => { headerRows.splice(headerRows.indexOf(row), 1); row.el.remove(); },
      }, '✕'), error);
    headerRows.push(row);
    headerList.append(row.el);
    return keyInput;
  }
  Object.entries(spec.headers ?? {}).forEach(([k, v]) => addHeader(k, v));
  const hasRedacted = () => signing.value === REDACTED || headerRows.some((r) => r.value.value === REDACTED);

  // body and its fields
  const body = h('textarea', { rows: 6, placeholder: 'Empty: the whole event as JSON, in EMQX\'s format.\nOr a template, e.g. {"client": "${clientid}", "topic": "${topic}", "temp": ${payload.temp}}', spellcheck: 'false', 'data-testid': 'webhook-body' });
  body.value = spec.body ?? '';
  const fieldEvent = h('select', { 'aria-label': 'Show the fields of', 'data-testid': 'fields-event' });
  const chips = h('div', { class: 'chips', 'data-testid': 'available-fields' });
  const sample = h('pre', { class: 'code' });
  const sampleBox = h('details', { class: 'sample hidden' }, h('summary', null, 'Sample event'), sample);
  const catalogueNote = h('span', { class: 'muted small' });
  const bodyField = field({
    name: 'body', label: 'Body', control: body,
    help: 'A placeholder ${field} takes the event\'s value; inside a JSON string it is escaped. ${payload.x} reads a JSON payload. GET and DELETE send no body.',
  });
  bodyField.append(h('div', { class: 'subpanel' },
    h('div', { class: 'row wrap' }, h('strong', null, 'Available fields'), h('span', { class: 'muted' }, 'of'), h('div', null, fieldEvent), catalogueNote),
    chips, sampleBox));

  function insertField(name) {
    const text = `\${${name}}`;
    const start = body.selectionStart ?? body.value.length;
    const end = body.selectionEnd ?? start;
    body.setRangeText(text, start, end, 'end');
    body.focus();
  }

  async function refreshFields() {
    const catalogue = await loadCatalogue();
    const selected = mode === 'all'
      ? catalogue.events.map((e) => e.event)
      : [...checked].filter((e) => (mode === 'custom')
        || (mode === 'messages' && MESSAGE_EVENTS.some((m) => m.event === e))
        || (mode === 'events' && CLIENT_EVENTS.some((c) => c.event === e)));
    const events = catalogue.events.filter((e) => selected.includes(e.event));
    const previous = fieldEvent.value;
    mount(fieldEvent, events.map((e) => h('option', { value: e.event }, `${e.title} (${e.event})`)));
    if (events.some((e) => e.event === previous)) fieldEvent.value = previous;
    catalogueNote.textContent = catalogue.fromServer ? '' : '(built-in list: this hookmq does not serve /api/v5/webhook_events)';
    showFields(catalogue);
  }
  function showFields(catalogue) {
    const event = catalogue.events.find((e) => e.event === fieldEvent.value);
    if (!event) {
      mount(chips, h('span', { class: 'muted' }, 'Select a trigger to see its fields.'));
      sampleBox.classList.add('hidden');
      return;
    }
    mount(chips, event.fields.map((f) => h('button', {
      type: 'button', class: 'chip', title: f.description || `Insert \${${f.name}}`,
      onclick: () => insertField(f.name),
    }, `\${${f.name}}`)));
    if (event.sample) {
      sample.textContent = JSON.stringify(event.sample, null, 2);
      sampleBox.classList.remove('hidden');
    } else {
      sampleBox.classList.add('hidden');
    }
  }
  fieldEvent.addEventListener('change', async () => showFields(await loadCatalogue()));

  const request = h('section', { class: 'section', 'aria-labelledby': 'sec-request' },
    h('h2', { id: 'sec-request' }, 'Request'),
    urlField,
    field({
      name: 'headers', label: 'Headers',
      control: h('div', null, headerList, h('button', { type: 'button', class: 'btn small', 'data-testid': 'header-add', onclick: () => addHeader().focus() }, '+ Add header')),
      help: 'Values may hold placeholders. Authorization values are stored as secrets and shown as ******.',
    }),
    bodyField);

  // ---- advanced ----
  const text = (name, value, placeholder) => h('input', { type: 'text', value: value ?? '', placeholder, 'data-testid': `adv-${name}` });
  const number = (name, value, min = 1) => h('input', { type: 'number', min, step: 1, value: value ?? '', 'data-testid': `adv-${name}` });
  const checkbox = (name, value, label) => h('label', { class: 'check' }, h('input', { type: 'checkbox', checked: Boolean(value), 'data-testid': `adv-${name}` }), label);

  const connectTimeout = text('connect_timeout', spec.connect_timeout, '15s');
  const requestTimeout = text('request_timeout', spec.request_timeout, '15s');
  const poolSize = number('pool_size', spec.pool_size);
  const maxInflight = number('max_inflight', spec.max_inflight);
  const pipelining = number('pipelining', spec.pipelining);
  const ordered = checkbox('ordered', spec.ordered, 'Keep each client’s events in order');
  const retryMaxAge = text('retry_max_age', spec.retry_max_age, '24h');
  const healthCheck = text('health_check_interval', spec.health_check_interval, '15s');
  const moreUrls = h('textarea', { rows: 2, placeholder: 'http://backup.example:5000/hook', spellcheck: 'false', 'data-testid': 'adv-urls', 'aria-label': 'More URLs' }, (spec.urls ?? []).join('\n'));
  const urlStrategy = h('select', { 'data-testid': 'adv-url_strategy' },
    h('option', { value: 'round_robin', selected: spec.url_strategy !== 'failover' }, 'Round robin (share the load)'),
    h('option', { value: 'failover', selected: spec.url_strategy === 'failover' }, 'Failover (the first that answers)'));
  const maxBufferMiB = number('max_buffer_mib', Math.round((spec.max_buffer_bytes ?? 1073741824) / 1048576));
  const overflow = h('select', { 'data-testid': 'adv-overflow' },
    h('option', { value: 'drop_new', selected: spec.overflow !== 'drop_oldest' }, 'Drop new events'),
    h('option', { value: 'drop_oldest', selected: spec.overflow === 'drop_oldest' }, 'Drop the oldest events'));
  const syncBeforeAck = checkbox('sync_before_ack', spec.sync_before_ack, 'Acknowledge QoS 1/2 publishes only once their events are on disk');
  const maxRetries = number('max_retries', spec.max_retries, 0);
  const requestTtl = text('request_ttl', spec.request_ttl, 'none');
  const retryBackoff = text('retry_backoff', spec.retry_backoff, '1s');
  const retryMaxBackoff = text('retry_max_backoff', spec.retry_max_backoff, '1m');
  const queueCapacity = number('queue_capacity', spec.queue_capacity);
  const batchMax = number('batch_max_events', spec.batch?.max_events ?? 1);
  const batchWait = text('batch_max_wait', spec.batch?.max_wait, '0s');
  const batchFormat = h('select', { 'data-testid': 'adv-batch_format' },
    h('option', { value: 'json_array', selected: spec.batch?.format !== 'ndjson' }, 'JSON array'),
    h('option', { value: 'ndjson', selected: spec.batch?.format === 'ndjson' }, 'NDJSON (one event per line)'));
  const buffer = h('select', { 'data-testid': 'adv-buffer' },
    h('option', { value: 'disk', selected: spec.buffer !== 'memory' && spec.buffer !== 'cluster' }, 'Disk (survives a restart)'),
    h('option', { value: 'memory', selected: spec.buffer === 'memory' }, 'Memory only'),
    h('option', { value: 'cluster', selected: spec.buffer === 'cluster' }, 'Cluster (survives the loss of a node; needs NATS)'));
  const encoding = h('select', { 'data-testid': 'adv-payload_encoding' },
    h('option', { value: 'plain', selected: spec.payload_encoding !== 'base64' }, 'Plain text (like EMQX)'),
    h('option', { value: 'base64', selected: spec.payload_encoding === 'base64' }, 'Base64 (binary-safe)'));
  const signing = h('input', { type: 'password', value: spec.signing_secret ?? '', placeholder: 'whsec_…', autocomplete: 'off', 'data-testid': 'adv-signing_secret' });
  const showSecret = h('button', { type: 'button', class: 'btn small', onclick: () => { signing.type = signing.type === 'password' ? 'text' : 'password'; } }, 'Show');
  const generate = h('button', { type: 'button', class: 'btn small', onclick: () => { signing.value = randomSecret(); signing.type = 'text'; } }, 'Generate');
  const tlsVerify = checkbox('tls_verify', spec.tls?.verify ?? true, 'Verify the server certificate');
  const caFile = text('tls_ca_file', spec.tls?.ca_file, '/etc/hookmq/ca.pem');
  const certFile = text('tls_certfile', spec.tls?.certfile, '/etc/hookmq/client.pem');
  const keyFile = text('tls_keyfile', spec.tls?.keyfile, '/etc/hookmq/client.key');

  const advanced = h('details', { class: 'advanced', 'data-testid': 'webhook-advanced' },
    h('summary', null, 'Advanced settings'),
    h('div', { class: 'body' },
      h('h3', null, 'Connection and delivery'),
      h('div', { class: 'fields3' },
        field({ name: 'connect_timeout', label: 'Connect timeout', control: connectTimeout, help: 'e.g. 500ms, 15s, 1m' }),
        field({ name: 'request_timeout', label: 'Request timeout', control: requestTimeout, help: 'For one request, answer included.' }),
        field({ name: 'pool_size', label: 'Connection pool size', control: poolSize, help: 'Idle connections kept open.' }),
        field({ name: 'max_inflight', label: 'Lanes', control: maxInflight, help: 'Connections delivering at once (1–1024).' }),
        field({ name: 'pipelining', label: 'Pipelining', control: pipelining, help: 'Requests sent on a connection before the first answer (1: one at a time).' }),
        field({ name: 'queue_capacity', label: 'Queue capacity', control: queueCapacity, help: 'Events waiting at most; more are dropped and counted.' }),
        field({ name: 'buffer', label: 'Buffer', control: buffer, help: 'Disk: queued events are journaled under the data directory and delivered after a crash or restart. Cluster: they wait in NATS JetStream and any node running the webhook delivers them.' }),
        field({ name: 'max_buffer_bytes', label: 'Disk buffer, MiB', control: maxBufferMiB, help: 'The journal at most; past it, the overflow rule.' }),
        field({ name: 'overflow', label: 'When the disk buffer is full', control: overflow, help: 'Either way the dropped events are counted.' }),
        field({ name: 'payload_encoding', label: 'Payload encoding', control: encoding })),
      field({ name: 'ordered', control: ordered, help: 'Off: one client\'s events may be sent in parallel, for more throughput from few clients.' }),
      field({ name: 'sync_before_ack', control: syncBeforeAck, help: 'Disk buffer only: publishers wait for the local disk (a millisecond or so), never for your server.' }),
      h('h3', null, 'More receivers'),
      h('div', { class: 'fields3' },
        field({ name: 'urls', label: 'More URLs, one per line', control: moreUrls, help: 'Sent to as well as the URL above, each with its own status. A client\'s events stay in order either way.' }),
        field({ name: 'url_strategy', label: 'Share events', control: urlStrategy, help: 'A server that keeps failing is skipped until it answers again.' })),
      h('h3', null, 'Batching'),
      h('div', { class: 'fields3' },
        field({ name: 'batch.max_events', label: 'Events per request', control: batchMax, help: '1: one request per event. More: a lane sends its events together (POST or PUT; no ${…} in the URL or headers).' }),
        field({ name: 'batch.max_wait', label: 'Wait for a batch to fill', control: batchWait, help: 'e.g. 10ms; 0s sends what is queued at once.' }),
        field({ name: 'batch.format', label: 'Batch body', control: batchFormat, help: 'Each event rendered as alone (the body template applies per event).' })),
      h('h3', null, 'Retries'),
      h('div', { class: 'fields3' },
        field({ name: 'retry_max_age', label: 'Retry for', control: retryMaxAge, help: 'Connection errors, timeouts, 408, 429 and 5xx are retried until the event is this old.' }),
        field({ name: 'max_retries', label: 'Max retries', control: maxRetries, help: 'Optional: also stop after this many retries. Empty: by age only.' }),
        field({ name: 'request_ttl', label: 'Request TTL (EMQX)', control: requestTtl, help: 'Optional, e.g. 45s as EMQX: older events are dropped unsent (dropped.expired); later answers count as late replies. Empty: nothing is dropped for age.' }),
        field({ name: 'retry_backoff', label: 'Retry backoff', control: retryBackoff, help: 'First delay, doubled each retry.' }),
        field({ name: 'retry_max_backoff', label: 'Max retry backoff', control: retryMaxBackoff }),
        field({ name: 'health_check_interval', label: 'Probe a failing server every', control: healthCheck, help: 'After 5 failures in a row, one request at a time.' })),
      h('h3', null, 'Security'),
      field({
        name: 'signing_secret', label: 'Signing secret',
        control: h('div', { class: 'row' }, h('div', { class: 'grow' }, signing), showSecret, generate),
        help: 'Standard Webhooks: requests get webhook-id, webhook-timestamp and webhook-signature headers. Empty: not signed.',
      }),
      field({ name: 'tls', control: tlsVerify, help: 'For https:// URLs.' }),
      h('div', { class: 'fields3' },
        field({ name: 'tls.ca_file', label: 'CA certificates file', control: caFile, help: 'PEM; empty: the bundled web roots.' }),
        field({ name: 'tls.certfile', label: 'Client certificate file', control: certFile, help: 'PEM, for servers asking for one.' }),
        field({ name: 'tls.keyfile', label: 'Client key file', control: keyFile }))));
  registry.set('tls.verify', registry.get('tls'));

  // ---- collect and validate ----
  const intOf = (input) => (input.value.trim() === '' ? NaN : Number(input.value));
  const orNull = (value) => (value.trim() === '' ? null : value.trim());

  function collect() {
    const headers = {};
    for (const row of headerRows) {
      const key = row.key.value.trim();
      if (key) headers[key.toLowerCase()] = row.value.value;
    }
    let events;
    if (mode === 'all') events = ['*'];
    else if (mode === 'messages') events = MESSAGE_EVENTS.map((e) => e.event).filter((e) => checked.has(e));
    else if (mode === 'events') events = CLIENT_EVENTS.map((e) => e.event).filter((e) => checked.has(e));
    else events = [...MESSAGE_EVENTS, ...CLIENT_EVENTS].map((e) => e.event).filter((e) => checked.has(e));
    const usesTopics = mode === 'messages' || mode === 'custom';
    const topics = usesTopics ? topicRows.map((r) => r.key.value.trim()) : (mode === 'all' ? ['#'] : (spec.topics?.length ? spec.topics : ['#']));
    // Fields the form does not show keep their saved values (a PUT resets left-out fields).
    const { metrics: _metrics, status: _status, receivers: _receivers, ...kept } = spec;
    return {
      ...kept,
      name: editing ? original : nameInput.value.trim(),
      description: noteInput.value,
      enable: spec.enable ?? true,
      events,
      topics,
      method: method.value,
      url: url.value.trim(),
      urls: moreUrls.value.split('\n').map((line) => line.trim()).filter(Boolean),
      url_strategy: urlStrategy.value,
      headers,
      body: body.value.trim() === '' ? null : body.value,
      payload_encoding: encoding.value,
      signing_secret: orNull(signing.value),
      connect_timeout: connectTimeout.value.trim(),
      request_timeout: requestTimeout.value.trim(),
      pool_size: intOf(poolSize),
      max_inflight: intOf(maxInflight),
      pipelining: intOf(pipelining),
      ordered: ordered.querySelector('input').checked,
      retry_max_age: retryMaxAge.value.trim(),
      max_retries: maxRetries.value.trim() === '' ? null : intOf(maxRetries),
      request_ttl: orNull(requestTtl.value),
      retry_backoff: retryBackoff.value.trim(),
      retry_max_backoff: retryMaxBackoff.value.trim(),
      queue_capacity: intOf(queueCapacity),
      buffer: buffer.value,
      max_buffer_bytes: intOf(maxBufferMiB) * 1048576,
      overflow: overflow.value,
      sync_before_ack: syncBeforeAck.querySelector('input').checked,
      batch: { max_events: intOf(batchMax), max_wait: batchWait.value.trim() || '0s', format: batchFormat.value },
      health_check_interval: healthCheck.value.trim(),
      tls: {
        verify: tlsVerify.querySelector('input').checked,
        ca_file: orNull(caFile.value),
        certfile: orNull(certFile.value),
        keyfile: orNull(keyFile.value),
      },
    };
  }

  /** Client-side checks, the same rules as the API; returns [[field, message], ...]. */
  function check(s, { forTest = false } = {}) {
    const problems = [];
    if (!forTest && !editing && !NAME_RE.test(s.name)) {
      problems.push(['name', s.name ? 'Use letters, digits, - and _, starting with a letter or digit.' : 'Enter a name, e.g. my_webhook.']);
    }
    if (!s.url) problems.push(['url', 'Enter the URL of your HTTP server, e.g. http://localhost:5000.']);
    else if (!/^https?:\/\/[^/\s]/i.test(s.url)) problems.push(['url', 'The URL starts with http:// or https://, then the host.']);
    s.urls.forEach((more, i) => {
      if (!/^https?:\/\/[^/\s]/i.test(more)) problems.push([`urls[${i}]`, `Line ${i + 1} is not a URL: it starts with http:// or https://, then the host.`]);
      else if (more === s.url || s.urls.indexOf(more) !== i) problems.push([`urls[${i}]`, `Line ${i + 1} repeats a URL.`]);
    });
    if (mode === 'messages' && !s.events.length) problems.push(['message_events', 'Select at least one message event.']);
    if (mode === 'events' && !s.events.length) problems.push(['client_events', 'Select at least one event.']);
    if (mode === 'custom' && !s.events.length) problems.push(['events', 'Select at least one message or event.']);
    if (mode === 'messages' || mode === 'custom') {
      if (!s.topics.length) problems.push(['topics', 'Add at least one topic filter, e.g. # for all topics.']);
      const seen = new Set();
      s.topics.forEach((t, i) => {
        if (!t) problems.push([`topics[${i}]`, 'Enter a topic filter or remove this row.']);
        else if (seen.has(t)) problems.push([`topics[${i}]`, 'This topic filter is listed twice.']);
        seen.add(t);
      });
    }
    const keys = new Set();
    for (const row of headerRows) {
      const key = row.key.value.trim().toLowerCase();
      if (!key && row.value.value) problems.push([`headers.${key}`, 'Enter the header name or remove this row.']);
      else if (key && keys.has(key)) problems.push([`headers.${key}`, 'This header is listed twice.']);
      keys.add(key);
    }
    for (const [name, value] of [['pool_size', s.pool_size], ['max_inflight', s.max_inflight], ['pipelining', s.pipelining], ['queue_capacity', s.queue_capacity], ['max_buffer_bytes', s.max_buffer_bytes / 1048576]]) {
      if (!Number.isInteger(value) || value < 1) problems.push([name, 'Enter a whole number, at least 1.']);
    }
    if (s.max_retries !== null && (!Number.isInteger(s.max_retries) || s.max_retries < 0)) problems.push(['max_retries', 'Enter a whole number (0: no retries), or leave it empty.']);
    if (!s.retry_max_age) problems.push(['retry_max_age', 'Enter how long to retry, e.g. 24h.']);
    if (s.sync_before_ack && s.buffer !== 'disk') problems.push(['sync_before_ack', 'Needs the disk buffer.']);
    if (!Number.isInteger(s.batch.max_events) || s.batch.max_events < 1 || s.batch.max_events > 10000) problems.push(['batch.max_events', 'Enter a whole number from 1 to 10000.']);
    return problems;
  }

  function report(problems) {
    let first = null;
    for (const [fieldName, message] of problems) {
      const el = showError(fieldName, message);
      first ??= el;
    }
    reveal(first);
  }

  // ---- Test ----
  function showProbe(result) {
    const ok = result.success;
    const headline = result.status
      ? `${ok ? '✓' : '✗'} Receiver answered ${result.status} in ${result.latency_ms} ms`
      : `✗ No answer after ${result.latency_ms} ms`;
    probe.className = `probe ${ok ? 'ok' : 'fail'}`;
    mount(probe,
      h('div', { class: 'headline', 'data-testid': 'probe-headline' }, headline),
      result.error && !result.status ? h('div', { 'data-testid': 'probe-error' }, result.error) : null,
      result.body ? h('pre', { 'data-testid': 'probe-body' }, result.body) : h('div', { class: 'muted small' }, result.status ? 'The answer had no body.' : ''));
  }

  testButton.addEventListener('click', async () => {
    clearErrors();
    const s = collect();
    const problems = check(s, { forTest: true }).filter(([f]) => f === 'url' || f.startsWith('urls') || f.startsWith('headers') || f.startsWith('topics'));
    if (problems.length) { report(problems); return; }
    if (!NAME_RE.test(s.name)) delete s.name;
    testButton.disabled = true;
    testButton.textContent = 'Testing…';
    mount(probe, h('div', { class: 'muted' }, 'Sending a sample message.publish event…'));
    probe.className = 'probe';
    try {
      // The saved webhook's secrets are not in the form (shown as ******). Unchanged: test
      // the saved webhook itself. Changed: test without them (the API cannot fill them in
      // for an unsaved form) and say so.
      let withoutSecrets = false;
      let result;
      if (editing && hasRedacted() && JSON.stringify(collect()) === initial) {
        result = await api.post(`/webhooks/${enc(original)}/test`);
      } else {
        if (s.signing_secret === REDACTED) { s.signing_secret = null; withoutSecrets = true; }
        for (const [key, value] of Object.entries(s.headers)) {
          if (value === REDACTED) { delete s.headers[key]; withoutSecrets = true; }
        }
        result = await api.post('/webhooks_probe', s);
      }
      showProbe(result);
      if (withoutSecrets) {
        probe.append(h('div', { class: 'small', 'data-testid': 'probe-note' },
          'Sent without the saved secrets (signing secret, authorization headers shown as ******): save, then use Test on the details page to include them.'));
      }
    } catch (error) {
      if (!(error instanceof ApiError) || error.status === 401) throw error;
      probe.className = 'probe fail';
      const where = error.field ? showError(error.field, error.message) : null;
      mount(probe, h('div', { class: 'headline' }, '✗ Not sent'),
        h('div', { 'data-testid': 'probe-error' }, where && where !== formError ? `Fix the highlighted field: ${error.message}` : error.message));
      if (where && where !== formError) reveal(where);
    } finally {
      testButton.disabled = false;
      testButton.textContent = 'Test';
    }
  });

  // ---- save ----
  const save = h('button', { type: 'submit', class: 'btn primary', 'data-testid': 'webhook-save' }, editing ? 'Update' : 'Save');
  const cancel = h('a', { class: 'btn', href: editing ? `/webhooks/detail/${enc(original)}` : '/webhooks', 'data-testid': 'webhook-cancel' }, 'Cancel');
  const form = h('form', { class: 'form', novalidate: true, 'data-testid': 'webhook-form' },
    basic, trigger, request, advanced, formError, h('div', { class: 'form-foot' }, cancel, save));

  let saved = false;
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors();
    const s = collect();
    const problems = check(s);
    if (problems.length) { report(problems); return; }
    save.disabled = true;
    try {
      if (editing) {
        await api.put(`/webhooks/${enc(original)}`, s);
        toast(`Webhook ${original} updated.`, 'good');
        saved = true;
        await ctx.navigate(`/webhooks/detail/${enc(original)}`);
      } else {
        await api.post('/webhooks', s);
        toast(`Webhook ${s.name} created.`, 'good');
        saved = true;
        await ctx.navigate('/webhooks');
      }
    } catch (error) {
      if (!(error instanceof ApiError) || error.status === 401) throw error;
      reveal(showError(error.field, error.message));
    } finally {
      save.disabled = false;
    }
  });

  const head = h('div', { class: 'page-head' },
    h('div', null,
      h('h1', null, editing ? `Webhook ${original}: settings` : 'Create a webhook'),
      h('div', { class: 'sub' }, 'Each selected message or event becomes one HTTP request to your server.')));
  const copied = copyOf === null ? null : h('div', { class: 'notice', 'data-testid': 'duplicate-notice' },
    `A copy of ${copyOf}.`, secretsLeftOut ? ' Its secrets (signing secret, secret headers) are not copied: enter them again.' : '');
  mount(ctx.el, head, copied, form);
  setMode(mode);
  const initial = JSON.stringify(collect());

  ctx.setGuard(async () => {
    if (saved || JSON.stringify(collect()) === initial) return true;
    return confirmDialog({
      title: 'Leave without saving?',
      message: editing ? `Your changes to ${original} will be lost.` : 'This webhook has not been saved.',
      confirmText: 'Leave',
      danger: true,
    });
  });
  if (!editing) nameInput.focus();
  ctx.el.dataset.loaded = 'true';
}
