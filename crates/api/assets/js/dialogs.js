// Toasts, the confirm dialog and the change-password dialog (native <dialog>).

import { api, ApiError, enc } from './api.js';
import { h } from './dom.js';

export function toast(message, kind = 'info', ms = 4000) {
  const box = document.getElementById('toasts');
  if (!box) return;
  const el = h('div', { class: ['toast', kind === 'info' ? null : kind], 'data-testid': 'toast' }, message);
  box.append(el);
  setTimeout(() => el.remove(), ms);
}

function openDialog(dialog) {
  document.body.append(dialog);
  dialog.showModal();
  dialog.addEventListener('close', () => dialog.remove());
}

/** Resolves true when the user confirms. */
export function confirmDialog({ title, message, confirmText = 'Confirm', danger = false }) {
  return new Promise((resolve) => {
    let answer = false;
    const ok = h('button', {
      type: 'button', class: ['btn', 'primary', danger && 'danger solid'], 'data-testid': 'confirm-ok',
      onclick: () => { answer = true; dialog.close(); },
    }, confirmText);
    const dialog = h('dialog', { 'data-testid': 'confirm-dialog', 'aria-labelledby': 'confirm-title' },
      h('div', { class: 'd-head', id: 'confirm-title' }, title),
      h('div', { class: 'd-body' }, message),
      h('div', { class: 'd-foot' },
        h('button', { type: 'button', class: 'btn', 'data-testid': 'confirm-cancel', onclick: () => dialog.close() }, 'Cancel'),
        ok));
    dialog.addEventListener('close', () => resolve(answer));
    openDialog(dialog);
    ok.focus();
  });
}

function passwordField(label, name, autocomplete) {
  const input = h('input', { type: 'password', name, id: `pwd-${name}`, autocomplete, 'data-testid': `pwd-${name}` });
  const error = h('div', { class: 'field-error hidden', role: 'alert' });
  const el = h('div', { class: 'field' }, h('label', { for: `pwd-${name}` }, label), input, error);
  return {
    el, input,
    error(message) {
      error.textContent = message ?? '';
      error.classList.toggle('hidden', !message);
      input.setAttribute('aria-invalid', message ? 'true' : 'false');
    },
  };
}

/**
 * Asks for the old and a new password and changes it with POST /users/{username}/change_pwd.
 * `postponable`: the first-login prompt can be put off with "Later".
 * Resolves 'changed', 'later' or 'cancelled'.
 */
export function changePasswordDialog({ username, postponable = false, oldPassword = '' }) {
  return new Promise((resolve) => {
    let result = postponable ? 'later' : 'cancelled';
    const old = passwordField('Current password', 'old_pwd', 'current-password');
    const fresh = passwordField('New password', 'new_pwd', 'new-password');
    const again = passwordField('Repeat the new password', 'confirm_pwd', 'new-password');
    old.input.value = oldPassword;
    const formError = h('div', { class: 'notice error hidden', role: 'alert' });
    const save = h('button', { type: 'submit', class: 'btn primary', 'data-testid': 'pwd-save' }, 'Change password');

    const form = h('form', { method: 'dialog', novalidate: true },
      h('div', { class: 'd-head', id: 'pwd-title' }, postponable ? 'Change the default password' : 'Change password'),
      h('div', { class: 'd-body' },
        postponable ? h('p', null, `You are logged in as ${username} with the default password. Anyone who knows it can manage this broker: choose a new one.`) : null,
        old.el, fresh.el, again.el, formError),
      h('div', { class: 'd-foot' },
        h('button', {
          type: 'button', class: 'btn', 'data-testid': postponable ? 'pwd-later' : 'pwd-cancel',
          onclick: () => dialog.close(),
        }, postponable ? 'Later' : 'Cancel'),
        save));

    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      for (const f of [old, fresh, again]) f.error(null);
      formError.classList.add('hidden');
      let bad = false;
      if (!old.input.value) { old.error('Enter your current password.'); bad = true; }
      if (fresh.input.value.length < 8) { fresh.error('Use at least 8 characters.'); bad = true; }
      else if (fresh.input.value === old.input.value) { fresh.error('Choose a password different from the current one.'); bad = true; }
      if (again.input.value !== fresh.input.value) { again.error('The two new passwords differ.'); bad = true; }
      if (bad) return;
      save.disabled = true;
      try {
        await api.post(`/users/${enc(username)}/change_pwd`, { old_pwd: old.input.value, new_pwd: fresh.input.value });
        result = 'changed';
        dialog.close();
        toast('Password changed.', 'good');
      } catch (error) {
        if (error instanceof ApiError && error.missingRoute) {
          formError.textContent = 'This hookmq cannot change passwords from the dashboard yet.';
        } else if (error instanceof ApiError && error.field === 'old_pwd') {
          old.error(error.message.replace(/^old_pwd: /, ''));
        } else if (error instanceof ApiError && error.field === 'new_pwd') {
          fresh.error(error.message.replace(/^new_pwd: /, ''));
        } else if (error instanceof ApiError && error.status === 401 && error.code !== 'UNAUTHORIZED') {
          old.error('The current password is wrong.');
        } else {
          formError.textContent = error.message;
        }
        formError.classList.toggle('hidden', !formError.textContent);
      } finally {
        save.disabled = false;
      }
    });

    const dialog = h('dialog', { 'data-testid': 'change-password-dialog', 'aria-labelledby': 'pwd-title' }, form);
    dialog.addEventListener('close', () => resolve(result));
    openDialog(dialog);
    (oldPassword ? fresh.input : old.input).focus();
  });
}
