// The REST API under /api/v5: JSON in and out, a bearer token from POST /login.

const TOKEN = 'hookmq.token';
const USER = 'hookmq.user';

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.field = field ?? null;
  }

  /** The route does not exist on this hookmq (an older or newer API). */
  get missingRoute() {
    return this.status === 405 || (this.status === 404 && /^(API route |no such endpoint)/.test(this.message));
  }
}

export const session = {
  get token() { return sessionStorage.getItem(TOKEN) ?? localStorage.getItem(TOKEN); },
  get username() { return sessionStorage.getItem(USER) ?? localStorage.getItem(USER) ?? ''; },
  set(token, username) {
    localStorage.setItem(TOKEN, token);
    localStorage.setItem(USER, username);
  },
  clear() {
    for (const store of [localStorage, sessionStorage]) {
      store.removeItem(TOKEN);
      store.removeItem(USER);
    }
  },
};

let unauthorized = () => {};
/** Called with the error when an authenticated request answers 401. */
export function onUnauthorized(handler) { unauthorized = handler; }

export async function request(method, path, body, { auth = true, signal } = {}) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const token = session.token;
  if (auth && token) headers.authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(`/api/v5${path}`, {
      method, headers, signal,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new ApiError(0, 'NETWORK', `Cannot reach hookmq (${error.message}). Is it running?`);
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = text; }
  }
  if (!response.ok) {
    const fields = data && typeof data === 'object' ? data : {};
    const error = new ApiError(
      response.status,
      fields.code ?? `HTTP_${response.status}`,
      fields.message ?? (typeof data === 'string' && data ? data : `${response.status} ${response.statusText}`),
      fields.field,
    );
    if (response.status === 401 && auth) unauthorized(error);
    throw error;
  }
  return data;
}

export const api = {
  get: (path, options) => request('GET', path, undefined, options),
  post: (path, body, options) => request('POST', path, body ?? {}, options),
  put: (path, body, options) => request('PUT', path, body, options),
  del: (path, options) => request('DELETE', path, undefined, options),
};

/** `/webhooks/${name}` with the name escaped. */
export const enc = encodeURIComponent;

/** Query string from an object, skipping empty values. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}
