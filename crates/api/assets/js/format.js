// Number, time and protocol formatting for people.

const integer = new Intl.NumberFormat('en-US');

export function num(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return '—';
  return integer.format(n);
}

/** Events or messages per second, with up to two decimals. */
export function rate(x) {
  if (x === null || x === undefined || Number.isNaN(x)) return '—';
  if (x === 0) return '0';
  if (x >= 100) return integer.format(Math.round(x));
  return String(Math.round(x * 100) / 100);
}

export function ms(x) {
  if (x === null || x === undefined || Number.isNaN(x)) return '—';
  if (x >= 10_000) return `${rate(x / 1000)} s`;
  return `${rate(x)} ms`;
}

/** 93784000 → "1d 2h 3m". */
export function uptime(milliseconds) {
  if (milliseconds === null || milliseconds === undefined) return '—';
  let s = Math.floor(milliseconds / 1000);
  const d = Math.floor(s / 86400); s -= d * 86400;
  const hh = Math.floor(s / 3600); s -= hh * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  if (d) return `${d}d ${hh}h ${m}m`;
  if (hh) return `${hh}h ${m}m ${s}s`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

const pad = (n) => String(n).padStart(2, '0');

/** Milliseconds since the epoch (or seconds, or an ISO string) → "2026-11-01 12:34:56". */
export function time(value) {
  if (value === null || value === undefined || value === '') return '—';
  let date;
  if (typeof value === 'number') date = new Date(value < 1e11 ? value * 1000 : value);
  else date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

export function clock(date) {
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

export function protocol(version) {
  switch (Number(version)) {
    case 3: return 'MQTT v3.1';
    case 4: return 'MQTT v3.1.1';
    case 5: return 'MQTT v5.0';
    default: return version === undefined ? '—' : `MQTT (${version})`;
  }
}

export function yesNo(value) {
  if (value === undefined || value === null) return '—';
  return value ? 'Yes' : 'No';
}

/** Any JSON value as short text for a table cell. */
export function cell(value) {
  if (value === null || value === undefined) return '—';
  if (typeof value === 'boolean') return yesNo(value);
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}
