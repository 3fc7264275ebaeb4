// Shared by the UI's modules: the page's token and how requests carry it, API error bodies, DOM text.

const params = new URLSearchParams(location.search);

// token is the page's ?token=, passed on to every request.
export const token = params.get('token') || '';

export const $ = (id) => document.getElementById(id);

export function withAuth(headers = {}) {
  return token ? { ...headers, Authorization: `Bearer ${token}` } : headers;
}

// withTokenQuery adds ?token= to a same-origin URL for requests that cannot carry a header (<img>).
export function withTokenQuery(path) {
  const u = new URL(path, location.href);
  if (token) u.searchParams.set('token', token);
  return u.href;
}

export function pageURL(camera) {
  const p = new URLSearchParams();
  if (camera) p.set('camera', camera);
  if (token) p.set('token', token);
  const q = p.toString();
  return q ? `?${q}` : location.pathname;
}

export async function errorBody(res) {
  const text = await res.text().catch(() => '');
  try {
    const j = JSON.parse(text);
    return { code: j.code || '', message: j.error || text };
  } catch {
    return { code: '', message: text || res.statusText };
  }
}

export async function errorText(res) {
  return (await errorBody(res)).message;
}

export function setText(el, text) {
  if (el.textContent !== text) el.textContent = text; // untouched nodes keep screen readers quiet
}
