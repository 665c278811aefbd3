// The events a webhook can fire on, with their fields. GET /api/v5/webhook_events is the
// source; the list below is used when this hookmq does not serve it.

import { api } from './api.js';

export const MESSAGE_EVENTS = [
  { event: 'message.publish', title: 'Message publish', description: 'A client published a message (matched against the topic filters).' },
  { event: 'message.delivered', title: 'Message delivered', description: 'A message was sent to a subscriber.' },
  { event: 'message.acked', title: 'Message acked', description: 'A subscriber acknowledged a QoS 1 or 2 message.' },
  { event: 'message.dropped', title: 'Message dropped', description: 'A published message was not forwarded (e.g. no subscribers).' },
  { event: 'delivery.dropped', title: 'Delivery dropped', description: 'A message for a subscriber was dropped (e.g. its queue was full).' },
];

export const CLIENT_EVENTS = [
  { event: 'client.connected', title: 'Client connected', description: 'A client connected.' },
  { event: 'client.disconnected', title: 'Client disconnected', description: 'A client disconnected, with the reason.' },
  { event: 'client.connack', title: 'Connection acknowledged', description: 'The broker answered a CONNECT (also refusals).' },
  { event: 'client.check_authz_complete', title: 'Authorization complete', description: 'A publish or subscribe was allowed or denied.' },
  { event: 'client.check_authn_complete', title: 'Authentication complete', description: 'A client’s credentials were checked.' },
  { event: 'session.subscribed', title: 'Session subscribed', description: 'A client subscribed to a topic filter.' },
  { event: 'session.unsubscribed', title: 'Session unsubscribed', description: 'A client unsubscribed from a topic filter.' },
  { event: 'alarm.activated', title: 'Alarm activated', description: 'An alarm became active (high memory, a receiver down, a buffer near its bound...).' },
  { event: 'alarm.deactivated', title: 'Alarm deactivated', description: 'An active alarm cleared.' },
];

export const ALL_EVENTS = [...MESSAGE_EVENTS, ...CLIENT_EVENTS];
export const isMessageEvent = (name) => MESSAGE_EVENTS.some((e) => e.event === name);
export const titleOf = (name) => ALL_EVENTS.find((e) => e.event === name)?.title ?? name;

const COMMON = ['event', 'timestamp', 'node', 'metadata'];
const MESSAGE = ['id', 'clientid', 'username', 'payload', 'peerhost', 'peername', 'topic', 'qos', 'flags', 'pub_props', 'publish_received_at'];
const FALLBACK_FIELDS = {
  'message.publish': MESSAGE,
  'message.delivered': ['id', 'from_clientid', 'from_username', ...MESSAGE.slice(1)],
  'message.acked': ['id', 'from_clientid', 'from_username', ...MESSAGE.slice(1), 'puback_props'],
  'message.dropped': ['id', 'reason', ...MESSAGE.slice(1)],
  'delivery.dropped': ['id', 'reason', 'from_clientid', 'from_username', ...MESSAGE.slice(1)],
  'client.connected': ['clientid', 'username', 'mountpoint', 'peername', 'sockname', 'proto_name', 'proto_ver', 'keepalive', 'clean_start', 'receive_maximum', 'expiry_interval', 'is_bridge', 'conn_props', 'connected_at'],
  'client.disconnected': ['reason', 'clientid', 'username', 'peername', 'sockname', 'proto_name', 'proto_ver', 'disconn_props', 'disconnected_at', 'connected_at'],
  'client.connack': ['reason_code', 'clientid', 'clean_start', 'username', 'peername', 'sockname', 'proto_name', 'proto_ver', 'keepalive', 'expiry_interval', 'conn_props'],
  'client.check_authz_complete': ['clientid', 'username', 'peerhost', 'peername', 'topic', 'action', 'authz_source', 'result'],
  'client.check_authn_complete': ['clientid', 'username', 'peername', 'reason_code', 'is_superuser', 'is_anonymous'],
  'session.subscribed': ['clientid', 'username', 'peerhost', 'peername', 'topic', 'qos', 'sub_props'],
  'session.unsubscribed': ['clientid', 'username', 'peerhost', 'peername', 'topic', 'qos', 'unsub_props'],
  'alarm.activated': ['name', 'details', 'message', 'activated_at'],
  'alarm.deactivated': ['name', 'details', 'message', 'activated_at', 'deactivated_at'],
};

function fallback() {
  return ALL_EVENTS.map((e) => ({
    ...e,
    kind: isMessageEvent(e.event) ? 'message' : (e.event.startsWith('alarm.') ? 'alarm' : 'client'),
    fields: [...FALLBACK_FIELDS[e.event], ...COMMON],
    sample: null,
  }));
}

/** A field given as "name" or { name | field, description? } → { name, description }. */
function field(item) {
  if (typeof item === 'string') return { name: item, description: '' };
  return { name: item?.name ?? item?.field ?? String(item), description: item?.description ?? '' };
}

let catalogue = null;

/**
 * Resolves { events: [{ event, title, description, kind, fields: [{name, description}],
 * sample }], fromServer }.
 */
export function loadCatalogue() {
  if (!catalogue) {
    catalogue = api.get('/webhook_events')
      .then((list) => {
        if (!Array.isArray(list) || list.length === 0) throw new Error('empty');
        return {
          fromServer: true,
          events: list.map((e) => ({
            ...e,
            title: typeof e.title === 'object' ? (e.title.en ?? e.event) : (e.title ?? titleOf(e.event)),
            fields: (e.fields ?? e.columns ?? []).map(field),
          })),
        };
      })
      .catch(() => {
        catalogue = null; // ask again next time
        return { fromServer: false, events: fallback().map((e) => ({ ...e, fields: e.fields.map(field) })) };
      });
  }
  return catalogue;
}
