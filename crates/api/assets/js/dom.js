// Building DOM nodes without innerHTML: text is always text, never markup.

const PROPERTIES = new Set(['value', 'checked', 'disabled', 'selected', 'hidden', 'open', 'indeterminate', 'readOnly', 'multiple', 'required']);

/**
 * h('button', { class: 'btn', onclick: fn, 'data-testid': 'x' }, 'Save')
 * Children may be strings, numbers, nodes, arrays, or null/false (skipped).
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  if (props) {
    for (const [key, value] of Object.entries(props)) {
      if (value === undefined || value === null || value === false) continue;
      if (key.startsWith('on') && typeof value === 'function') {
        el.addEventListener(key.slice(2).toLowerCase(), value);
      } else if (key === 'class') {
        el.className = Array.isArray(value) ? value.filter(Boolean).join(' ') : value;
      } else if (key === 'text') {
        el.textContent = value;
      } else if (key === 'ref' && typeof value === 'function') {
        value(el);
      } else if (PROPERTIES.has(key)) {
        el[key] = value;
      } else {
        el.setAttribute(key, value === true ? '' : String(value));
      }
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces the children of `el`. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** Sets text only when it changed (keeps selections and avoids layout work while polling). */
export function setText(el, text) {
  const value = String(text);
  if (el.textContent !== value) el.textContent = value;
}

/** A two-state switch button with an accessible name. */
export function toggle({ checked, label, testid, onchange }) {
  const el = h('button', {
    type: 'button', class: 'switch', role: 'switch', 'aria-checked': String(Boolean(checked)),
    'aria-label': label, title: label, 'data-testid': testid,
  });
  el.addEventListener('click', async () => {
    const next = el.getAttribute('aria-checked') !== 'true';
    el.setAttribute('aria-checked', String(next));
    el.disabled = true;
    try {
      const ok = await onchange(next);
      if (ok === false) el.setAttribute('aria-checked', String(!next));
    } catch {
      el.setAttribute('aria-checked', String(!next));
    } finally {
      el.disabled = false;
    }
  });
  return el;
}

export function setToggle(el, checked) {
  if (!el.disabled) el.setAttribute('aria-checked', String(Boolean(checked)));
}

export function badge(text, kind, testid) {
  return h('span', { class: ['badge', kind], 'data-testid': testid }, text);
}

/** A statistic card. Returns { el, set(value, hint?) }. */
export function stat(label, { testid, kind, hint } = {}) {
  const value = h('div', { class: 'value', 'data-testid': testid }, '—');
  const hintEl = h('div', { class: 'hint' }, hint ?? '');
  const el = h('div', { class: ['stat', kind] }, h('div', { class: 'label' }, label), value, hintEl);
  return {
    el,
    set(v, newHint) {
      setText(value, v);
      if (newHint !== undefined) setText(hintEl, newHint);
    },
  };
}

export function debounce(fn, ms) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
