// Small canvas charts: a live line chart (newest point on the right) and a bar chart.

import { h } from './dom.js';
import { clock, rate as formatRate } from './format.js';

export const COLORS = ['#00a86b', '#e5484d', '#3b82f6', '#d9822b', '#8b5cf6'];
const GRID = '#eef0f3';
const AXIS_TEXT = '#86909c';
const FONT = '11px system-ui, -apple-system, "Segoe UI", Roboto, "Liberation Sans", Arial, sans-serif';

/** The smallest 1, 2 or 5 × 10^k at or above x. */
export function niceCeil(x) {
  if (!(x > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(x));
  for (const step of [1, 2, 5, 10]) {
    if (step * power >= x) return step * power;
  }
  return 10 * power;
}

class CanvasChart {
  constructor(container, { height, label, testid }) {
    this.canvas = h('canvas', { role: 'img', 'aria-label': label });
    this.el = h('div', { class: 'chart', 'data-testid': testid }, this.canvas);
    if (height) this.el.style.height = `${height}px`;
    container.append(this.el);
    this.observer = new ResizeObserver(() => this.draw());
    this.observer.observe(this.el);
  }

  /** Sizes the canvas for the screen's pixel ratio; returns the context and CSS size. */
  context() {
    const ratio = window.devicePixelRatio || 1;
    const width = this.el.clientWidth;
    const height = this.el.clientHeight;
    if (!width || !height) return null;
    if (this.canvas.width !== Math.round(width * ratio) || this.canvas.height !== Math.round(height * ratio)) {
      this.canvas.width = Math.round(width * ratio);
      this.canvas.height = Math.round(height * ratio);
    }
    const ctx = this.canvas.getContext('2d');
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.font = FONT;
    return { ctx, width, height };
  }

  destroy() {
    this.observer.disconnect();
    this.el.remove();
  }
}

/** How long a chart's kept points stay worth showing again. */
const HISTORY_MS = 5 * 60 * 1000;

/** The points kept for `key` in this tab (sessionStorage), newer than HISTORY_MS. */
function loadHistory(key) {
  try {
    const saved = JSON.parse(sessionStorage.getItem(key) ?? '[]');
    const since = Date.now() - HISTORY_MS;
    return saved.filter((p) => p.t >= since).map((p) => ({ time: new Date(p.t), values: p.v }));
  } catch {
    return [];
  }
}

/**
 * A live line chart: `push(date, [v1, v2, ...])` adds a point per series and scrolls.
 * options: series [{ name, color }], maxPoints, format (value → text), unit, and `history`:
 * a key under which the points are kept for this tab, so leaving the page (or reloading it)
 * and coming back shows the recent ones again.
 */
export class LineChart extends CanvasChart {
  constructor(container, { series, maxPoints = 60, format = formatRate, unit = '', height, label, testid, history }) {
    super(container, { height, label: label ?? series.map((s) => s.name).join(', '), testid });
    this.series = series.map((s, i) => ({ color: COLORS[i % COLORS.length], ...s }));
    this.maxPoints = maxPoints;
    this.format = format;
    this.unit = unit;
    this.historyKey = history ? `chart:${history}` : null;
    this.points = this.historyKey ? loadHistory(this.historyKey).slice(-maxPoints) : [];
    this.draw();
  }

  push(time, values) {
    this.points.push({ time, values });
    if (this.points.length > this.maxPoints) this.points.shift();
    this.save();
    this.draw();
  }

  clear() {
    this.points = [];
    this.save();
    this.draw();
  }

  save() {
    if (!this.historyKey) return;
    const saved = this.points.map((p) => ({ t: p.time.getTime(), v: p.values }));
    try {
      sessionStorage.setItem(this.historyKey, JSON.stringify(saved));
    } catch {
      // Storage full or off: the chart works without its history.
    }
  }

  draw() {
    this.el.dataset.points = String(this.points.length);
    const c = this.context();
    if (!c) return;
    const { ctx, width, height } = c;
    const left = 52;
    const right = 12;
    const top = 30;
    const bottom = 24;
    const plotW = width - left - right;
    const plotH = height - top - bottom;

    let max = 0;
    for (const p of this.points) for (const v of p.values) if (Number.isFinite(v) && v > max) max = v;
    const yMax = niceCeil(max * 1.1 || 1);

    // Grid and y labels.
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (let i = 0; i <= 4; i++) {
      const y = top + plotH - (plotH * i) / 4;
      ctx.strokeStyle = GRID;
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(left, Math.round(y) + 0.5);
      ctx.lineTo(left + plotW, Math.round(y) + 0.5);
      ctx.stroke();
      ctx.fillStyle = AXIS_TEXT;
      ctx.fillText(this.format((yMax * i) / 4), left - 8, y);
    }
    if (this.unit) {
      ctx.textAlign = 'left';
      ctx.fillText(this.unit, 4, 12);
    }

    // Legend with the latest values.
    const latest = this.points.at(-1);
    ctx.textAlign = 'left';
    ctx.textBaseline = 'middle';
    let x = left;
    this.series.forEach((s, i) => {
      ctx.fillStyle = s.color;
      ctx.fillRect(x, 12, 10, 3);
      ctx.fillStyle = '#4e5969';
      const text = `${s.name}${latest ? `  ${this.format(latest.values[i])}` : ''}`;
      ctx.fillText(text, x + 14, 14);
      x += ctx.measureText(text).width + 34;
    });

    if (this.points.length === 0) {
      ctx.textAlign = 'center';
      ctx.fillStyle = AXIS_TEXT;
      ctx.fillText('Waiting for data…', left + plotW / 2, top + plotH / 2);
      return;
    }

    const step = plotW / Math.max(1, this.maxPoints - 1);
    const offset = this.maxPoints - this.points.length;
    const px = (i) => left + (offset + i) * step;
    const py = (v) => top + plotH - (Math.min(Math.max(v, 0), yMax) / yMax) * plotH;

    // Time labels: about every 80 px.
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    ctx.fillStyle = AXIS_TEXT;
    const every = Math.max(1, Math.round(80 / step));
    for (let i = this.points.length - 1; i >= 0; i -= every) {
      const label = clock(this.points[i].time);
      const half = ctx.measureText(label).width / 2;
      const xi = Math.min(px(i), left + plotW - half);
      if (xi - half < left) break;
      ctx.fillText(label, xi, top + plotH + 6);
    }

    // The first series is drawn last, on top (it is the one that matters most).
    [...this.series.keys()].reverse().forEach((si) => {
      const s = this.series[si];
      ctx.strokeStyle = s.color;
      ctx.lineWidth = 2;
      ctx.lineJoin = 'round';
      ctx.beginPath();
      let started = false;
      this.points.forEach((p, i) => {
        const v = p.values[si];
        if (!Number.isFinite(v)) { started = false; return; }
        if (started) ctx.lineTo(px(i), py(v));
        else { ctx.moveTo(px(i), py(v)); started = true; }
      });
      ctx.stroke();
      if (si === 0 && this.points.length > 1) {
        ctx.lineTo(px(this.points.length - 1), top + plotH);
        ctx.lineTo(px(0), top + plotH);
        ctx.closePath();
        ctx.globalAlpha = 0.08;
        ctx.fillStyle = s.color;
        ctx.fill();
        ctx.globalAlpha = 1;
      }
      if (this.points.length === 1) {
        const v = this.points[0].values[si];
        ctx.fillStyle = s.color;
        ctx.beginPath();
        ctx.arc(px(0), py(v), 3, 0, Math.PI * 2);
        ctx.fill();
      }
    });
  }
}

/** Bars with a label under each: `set(labels, values)`. */
export class BarChart extends CanvasChart {
  constructor(container, { color = COLORS[2], height, label, testid, format = String } = {}) {
    super(container, { height, label, testid });
    this.color = color;
    this.format = format;
    this.labels = [];
    this.values = [];
  }

  set(labels, values) {
    this.labels = labels;
    this.values = values;
    this.draw();
  }

  draw() {
    const c = this.context();
    if (!c) return;
    const { ctx, width, height } = c;
    const left = 8;
    const top = 18;
    const bottom = 22;
    const plotW = width - left * 2;
    const plotH = height - top - bottom;
    const n = this.values.length;
    const max = Math.max(0, ...this.values);
    ctx.fillStyle = AXIS_TEXT;
    if (n === 0 || max === 0) {
      ctx.textAlign = 'center';
      ctx.textBaseline = 'middle';
      ctx.fillText('No requests measured yet', width / 2, height / 2);
      return;
    }
    const slot = plotW / n;
    const barW = Math.max(2, slot * 0.7);
    ctx.textAlign = 'center';
    const labelWidth = Math.max(...this.labels.map((l) => ctx.measureText(l).width)) + 6;
    const labelEvery = Math.max(1, Math.ceil(labelWidth / slot));
    this.values.forEach((v, i) => {
      const barH = (v / max) * plotH;
      const x = left + i * slot + (slot - barW) / 2;
      ctx.fillStyle = this.color;
      ctx.fillRect(x, top + plotH - barH, barW, barH);
      ctx.fillStyle = AXIS_TEXT;
      ctx.textBaseline = 'top';
      if (i % labelEvery === 0) ctx.fillText(this.labels[i] ?? '', x + barW / 2, top + plotH + 6);
      if (v > 0) {
        ctx.textBaseline = 'bottom';
        ctx.fillText(this.format(v), x + barW / 2, top + plotH - barH - 2);
      }
    });
  }
}

/**
 * Turns counter readings into per-second rates between polls. `next(counters)` returns the
 * rates since the previous call (null the first time); counters that went down (a reset)
 * count from zero.
 */
export class RateMeter {
  constructor() { this.previous = null; }

  next(counters, now = performance.now()) {
    const previous = this.previous;
    this.previous = { counters, now };
    if (!previous) return null;
    const seconds = (now - previous.now) / 1000;
    if (seconds <= 0) return null;
    return counters.map((value, i) => {
      const before = previous.counters[i];
      if (!Number.isFinite(value) || !Number.isFinite(before)) return NaN;
      const delta = value >= before ? value - before : value;
      return delta / seconds;
    });
  }
}
