// The login page. While the default password is in use it asks for a new one (postponable).

import { api, ApiError, session } from '../api.js';
import { changePasswordDialog } from '../dialogs.js';
import { h, mount } from '../dom.js';

const POSTPONED = 'hookmq.passwordPostponed';

function safeRedirect(value) {
  // Only paths of this dashboard, never another origin.
  if (!value || !value.startsWith('/') || value.startsWith('//') || value.startsWith('/login')) return '/overview';
  return value;
}

export async function render(ctx) {
  document.title = 'Log in · hookmq';
  const username = h('input', { type: 'text', id: 'username', name: 'username', autocomplete: 'username', value: 'admin', required: true, 'data-testid': 'login-username' });
  const password = h('input', { type: 'password', id: 'password', name: 'password', autocomplete: 'current-password', required: true, 'data-testid': 'login-password' });
  const error = h('div', { class: 'notice error hidden', role: 'alert', 'data-testid': 'login-error' });
  const submit = h('button', { type: 'submit', class: 'btn primary', 'data-testid': 'login-submit' }, 'Log in');

  const form = h('form', { class: 'card', novalidate: true, 'aria-labelledby': 'login-title' },
    h('div', { class: 'brand' },
      h('img', { src: '/assets/favicon.svg', alt: '' }),
      h('div', null, h('h1', { id: 'login-title' }, 'hookmq Dashboard'), h('div', { class: 'muted small' }, 'MQTT broker with webhooks'))),
    h('div', { class: 'field' }, h('label', { for: 'username' }, 'Username'), username),
    h('div', { class: 'field' }, h('label', { for: 'password' }, 'Password'), password),
    error,
    submit,
    h('p', { class: 'muted small' }, 'First start: user admin, password public.'));

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.classList.add('hidden');
    if (!username.value.trim() || !password.value) {
      error.textContent = 'Enter the username and the password.';
      error.classList.remove('hidden');
      return;
    }
    submit.disabled = true;
    submit.textContent = 'Logging in…';
    try {
      const answer = await api.post('/login', { username: username.value.trim(), password: password.value }, { auth: false });
      session.set(answer.token, answer.username ?? username.value.trim());
      // Servers that do not say: the default password is "public".
      const mustChange = answer.must_change_password ?? (password.value === 'public');
      if (mustChange && sessionStorage.getItem(POSTPONED) !== session.username) {
        const outcome = await changePasswordDialog({ username: session.username, postponable: true, oldPassword: password.value });
        if (outcome === 'later') sessionStorage.setItem(POSTPONED, session.username);
      }
      await ctx.navigate(safeRedirect(ctx.query.get('redirect')), { replace: true });
    } catch (e) {
      error.textContent = e instanceof ApiError && e.status === 401
        ? 'Wrong username or password.'
        : e.message;
      error.classList.remove('hidden');
      password.select();
    } finally {
      submit.disabled = false;
      submit.textContent = 'Log in';
    }
  });

  mount(ctx.el, h('div', { class: 'login' }, form));
  (username.value ? password : username).focus();
}
