// The dashboard's entry point: the page shell (navigation, header), the router (history API;
// hookmq answers index.html for every page path) and the login guard.

import { api, onUnauthorized, session } from './api.js';
import { changePasswordDialog, toast } from './dialogs.js';
import { h, mount } from './dom.js';
import * as alarms from './pages/alarms.js';
import * as clients from './pages/clients.js';
import * as login from './pages/login.js';
import * as nodes from './pages/nodes.js';
import * as overview from './pages/overview.js';
import * as subscriptions from './pages/subscriptions.js';
import * as webhookDetail from './pages/webhook_detail.js';
import * as webhookForm from './pages/webhook_form.js';
import * as webhooks from './pages/webhooks.js';

const NAV = [
  { group: 'Dashboard', items: [{ path: '/overview', label: 'Overview', testid: 'nav-overview' }] },
  {
    group: 'Monitoring',
    items: [
      { path: '/clients', label: 'Clients', testid: 'nav-clients' },
      { path: '/subscriptions', label: 'Subscriptions', testid: 'nav-subscriptions' },
      { path: '/nodes', label: 'Nodes', testid: 'nav-nodes' },
      { path: '/alarms', label: 'Alarms', testid: 'nav-alarms' },
    ],
  },
  { group: 'Data integration', items: [{ path: '/webhooks', label: 'Webhook', testid: 'nav-webhook' }] },
];

const ROUTES = [
  { pattern: '/login', render: login.render, public: true, bare: true },
  { pattern: '/overview', render: overview.render },
  { pattern: '/clients', render: clients.renderList },
  { pattern: '/clients/:id', render: clients.renderDetail },
  { pattern: '/subscriptions', render: subscriptions.render },
  { pattern: '/nodes', render: nodes.render },
  { pattern: '/alarms', render: alarms.render },
  { pattern: '/webhooks', render: webhooks.render },
  { pattern: '/webhooks/create', render: webhookForm.render },
  { pattern: '/webhooks/edit/:name', render: webhookForm.render },
  { pattern: '/webhooks/detail/:name', render: webhookDetail.render },
];

function match(path) {
  const parts = path.split('/').filter(Boolean);
  for (const route of ROUTES) {
    const pattern = route.pattern.split('/').filter(Boolean);
    if (pattern.length !== parts.length) continue;
    const params = {};
    let ok = true;
    for (let i = 0; i < pattern.length; i++) {
      if (pattern[i].startsWith(':')) {
        try { params[pattern[i].slice(1)] = decodeURIComponent(parts[i]); } catch { ok = false; }
      } else if (pattern[i] !== parts[i]) {
        ok = false;
      }
      if (!ok) break;
    }
    if (ok) return { route, params };
  }
  return null;
}

const root = document.getElementById('app');
let shell = null;
let page = { cleanups: [], guard: null };
let rendering = 0;

function buildShell() {
  const links = [];
  const nav = h('nav', { class: 'nav', 'aria-label': 'Main' },
    h('a', { class: 'logo', href: '/overview' },
      h('img', { src: '/assets/favicon.svg', alt: '' }),
      h('span', null, 'hookmq', h('small', null, 'MQTT broker · webhooks'))),
    NAV.map((group) => [
      h('div', { class: 'group' }, group.group),
      group.items.map((item) => {
        const link = h('a', { class: 'item', href: item.path, 'data-testid': item.testid, 'data-path': item.path }, item.label);
        links.push(link);
        return link;
      }),
    ]),
    h('div', { class: 'foot', 'data-testid': 'nav-node' }, ''));

  const crumbs = h('div', { class: 'crumbs', 'data-testid': 'breadcrumbs' });
  const menu = h('div', { class: 'menu hidden', role: 'menu' },
    h('button', {
      type: 'button', role: 'menuitem', 'data-testid': 'menu-change-password',
      onclick: () => { menu.classList.add('hidden'); changePasswordDialog({ username: session.username }); },
    }, 'Change password'),
    h('button', {
      type: 'button', role: 'menuitem', 'data-testid': 'menu-logout',
      onclick: async () => {
        menu.classList.add('hidden');
        // EMQX's POST /logout ends the token on the server, where hookmq serves it.
        await api.post('/logout', { username: session.username }).catch(() => {});
        session.clear();
        navigate('/login');
      },
    }, 'Log out'));
  const userButton = h('button', {
    type: 'button', 'aria-haspopup': 'menu', 'data-testid': 'user-menu',
    onclick: (event) => { event.stopPropagation(); menu.classList.toggle('hidden'); },
  }, '');
  document.addEventListener('click', () => menu.classList.add('hidden'));
  const content = h('main', { class: 'content', id: 'content' });
  const el = h('div', { class: 'shell' }, nav,
    h('div', { class: 'main' },
      h('header', { class: 'topbar' }, crumbs, h('div', { class: 'user' }, userButton, menu)),
      content));

  return {
    el, content, crumbs, userButton, links,
    nodeLabel: nav.querySelector('.foot'),
    setActive(path) {
      for (const link of links) {
        const active = path === link.dataset.path || path.startsWith(`${link.dataset.path}/`);
        link.classList.toggle('active', active);
        if (active) link.setAttribute('aria-current', 'page'); else link.removeAttribute('aria-current');
      }
    },
  };
}

function setCrumbs(items) {
  const parts = [];
  items.forEach((item, i) => {
    if (i > 0) parts.push(h('span', { class: 'sep', 'aria-hidden': 'true' }, '/'));
    const last = i === items.length - 1;
    if (item.href && !last) parts.push(h('a', { href: item.href }, item.label));
    else parts.push(h('span', { class: last ? 'current' : null }, item.label));
  });
  mount(shell.crumbs, parts);
  document.title = `${items.at(-1)?.label ?? 'Dashboard'} · hookmq`;
}

async function loadNode() {
  try {
    const nodes = await api.get('/nodes');
    const node = Array.isArray(nodes) ? nodes[0] : null;
    if (node && shell) shell.nodeLabel.textContent = `${node.node}${node.version ? ` · v${node.version}` : ''}`;
  } catch {
    // Older hookmq without /nodes: leave the footer empty.
  }
}

export async function navigate(to, { replace = false } = {}) {
  if (page.guard && !(await page.guard())) return;
  page.guard = null;
  if (replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  await render();
}

async function render() {
  const ticket = ++rendering;
  for (const cleanup of page.cleanups) {
    try { cleanup(); } catch (error) { console.warn(error); }
  }
  page = { cleanups: [], guard: null };

  const url = new URL(location.href);
  const path = url.pathname.replace(/\/+$/, '') || '/';
  if (path === '/') {
    history.replaceState(null, '', session.token ? '/overview' : '/login');
    return render();
  }
  const found = match(path);
  if (found && !found.route.public && !session.token) {
    history.replaceState(null, '', `/login?redirect=${encodeURIComponent(path + url.search)}`);
    return render();
  }
  if (found?.route.bare) {
    shell = null;
    const container = h('div');
    mount(root, container);
    await found.route.render({ el: container, params: found.params, query: url.searchParams, navigate, onLeave() {}, setGuard() {} });
    return;
  }
  if (!shell) {
    shell = buildShell();
    mount(root, shell.el);
    loadNode();
  }
  shell.userButton.textContent = `${session.username || 'admin'} ▾`;
  shell.setActive(path);
  const content = h('div', { 'data-page': found?.route.pattern ?? 'not-found' });
  mount(shell.content, content);
  window.scrollTo(0, 0);
  const ctx = {
    el: content,
    params: found?.params ?? {},
    query: url.searchParams,
    navigate,
    crumbs: setCrumbs,
    onLeave: (fn) => page.cleanups.push(fn),
    setGuard: (fn) => { page.guard = fn; },
    get current() { return ticket === rendering; },
  };
  if (!found) {
    setCrumbs([{ label: 'Not found' }]);
    mount(content, h('div', { class: 'card empty' },
      h('h2', null, 'This page does not exist'),
      h('p', null, `Nothing at ${path}.`),
      h('a', { class: 'btn primary', href: '/overview' }, 'Go to the overview')));
    return;
  }
  try {
    await found.route.render(ctx);
  } catch (error) {
    if (error?.status === 401) return; // the login page takes over
    console.error(error);
    mount(content, h('div', { class: 'notice error', role: 'alert', 'data-testid': 'page-error' },
      `This page could not be loaded: ${error.message}`));
  }
}

// Same-origin links are handled here, without reloading the page.
document.addEventListener('click', (event) => {
  if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const link = event.target.closest?.('a[href]');
  if (!link || link.target || link.hasAttribute('download')) return;
  const url = new URL(link.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith('/api/') || url.pathname.startsWith('/assets/')) return;
  event.preventDefault();
  navigate(url.pathname + url.search);
});

window.addEventListener('popstate', () => render());

let expired = false;
onUnauthorized(() => {
  if (expired) return;
  expired = true;
  session.clear();
  const here = location.pathname + location.search;
  toast('Your session has ended: log in again.', 'bad');
  page.guard = null;
  navigate(`/login?redirect=${encodeURIComponent(here)}`, { replace: true }).finally(() => { expired = false; });
});

render();
