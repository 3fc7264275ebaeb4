// AlertFeed: the UI's live list of rule events from /ws/alerts, with their snapshots.

import { $, token, withAuth, withTokenQuery, errorBody, setText } from './common.js';

const ALERTS_MAX = 50;
const ALERTS_RETRY_MAX_MS = 30000;
const ALERTS_OFF_RETRY_MS = 60000; // analytics off: ask again now and then (config may be reloaded)

// Characters a WebSocket subprotocol may hold (RFC 7230 tchar): such tokens travel as the subprotocol
// sightline.token.<token>, others as ?token=.
const TCHARS = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

// AlertFeed subscribes to /ws/alerts and lists the newest ALERTS_MAX events, newest first.
export class AlertFeed {
  // onOpen(camera) is called when the operator clicks an alert.
  constructor(list, stateEl, emptyEl, onOpen) {
    this.list = list;
    this.onOpen = onOpen;
    this.stateEl = stateEl;
    this.emptyEl = emptyEl;
    this.items = []; // newest first
    this.state = '';
    this.detail = '';
    this.ws = null;
    this.attempt = 0;
    this.timer = 0;
  }

  connect() {
    clearTimeout(this.timer);
    const u = new URL('/ws/alerts', location.href);
    u.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
    let protocols;
    if (token && TCHARS.test(token)) protocols = ['sightline', `sightline.token.${token}`];
    else if (token) u.searchParams.set('token', token);
    let ws;
    try {
      ws = protocols ? new WebSocket(u.href, protocols) : new WebSocket(u.href);
    } catch (err) {
      this.retry(err.message || String(err));
      return;
    }
    this.ws = ws;
    let opened = false;
    this.show('connecting');
    ws.onopen = () => {
      opened = true;
      this.attempt = 0;
      this.show('live');
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data !== 'string') return;
      try { this.add(JSON.parse(ev.data)); } catch { /* not JSON: ignore */ }
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (opened) this.retry('connection closed');
      else this.diagnose();
    };
  }

  // diagnose learns why the upgrade failed (a browser never sees the status): a plain GET passes the
  // same checks, then answers 409 analytics_off, or 426 when a WebSocket would have been accepted.
  async diagnose() {
    let status = 0;
    let body = { code: '', message: '' };
    try {
      const res = await fetch('/ws/alerts', { headers: withAuth(), cache: 'no-store' });
      status = res.status;
      body = await errorBody(res);
    } catch { /* unreachable: retry below */ }
    if (status === 409 && body.code === 'analytics_off') {
      this.show('off', 'analytics off', body.message);
      this.timer = setTimeout(() => this.connect(), ALERTS_OFF_RETRY_MS);
      return;
    }
    this.retry(status ? `HTTP ${status}: ${body.message}` : 'unreachable');
  }

  retry(reason) {
    clearTimeout(this.timer);
    const base = Math.min(ALERTS_RETRY_MAX_MS, 1000 * 2 ** this.attempt);
    this.attempt++;
    this.show('retrying', 'reconnecting', reason);
    this.timer = setTimeout(() => this.connect(), base * (0.75 + Math.random() / 2));
  }

  show(state, text = state, detail = '') {
    this.state = state;
    this.detail = detail;
    this.stateEl.dataset.state = state;
    setText(this.stateEl, text);
    this.stateEl.title = detail;
  }

  add(ev) {
    if (!ev || ev.type !== 'event' || typeof ev.camera !== 'string') return;
    this.items.unshift(ev);
    if (this.items.length > ALERTS_MAX) this.items.length = ALERTS_MAX;
    this.list.prepend(this.item(ev));
    while (this.list.children.length > ALERTS_MAX) this.list.lastElementChild.remove();
    this.emptyEl.hidden = true;
  }

  item(ev) {
    const li = $('alert-template').content.firstElementChild.cloneNode(true);
    const q = (sel) => li.querySelector(sel);
    li.dataset.camera = ev.camera;
    if (ev.id != null) li.dataset.id = String(ev.id);
    const when = new Date(ev.capturedAt || ev.at || Date.now());
    const time = q('.alert-time');
    if (!Number.isNaN(when.getTime())) {
      time.dateTime = when.toISOString();
      time.textContent = when.toLocaleTimeString([], { hour12: false });
    }
    q('.alert-camera').textContent = ev.camera;
    const dir = ev.direction ? ` ${String(ev.direction).replace(/_/g, ' ')}` : '';
    q('.alert-what').textContent = `${ev.rule || '?'} · ${ev.kind || 'event'}${dir}`;
    const who = `${ev.label || `class ${ev.cls ?? '?'}`}${ev.objectId ? ` #${ev.objectId}` : ''}`;
    q('.alert-object').textContent = Number.isFinite(ev.count) ? `${who} · count ${ev.count}` : who;
    const img = q('.alert-snap');
    // Only a path on this gateway: the page never loads images from elsewhere on an event's word.
    if (typeof ev.snapshot === 'string' && ev.snapshot.startsWith('/') && !ev.snapshot.startsWith('//')) {
      img.src = withTokenQuery(ev.snapshot);
      img.alt = `Snapshot of ${ev.camera} at ${time.textContent}`;
      img.hidden = false;
      img.addEventListener('error', () => { img.hidden = true; }, { once: true });
    }
    q('.alert-open').addEventListener('click', () => this.onOpen(ev.camera));
    q('.alert-open').setAttribute('aria-label',
      `${q('.alert-what').textContent}, ${q('.alert-object').textContent}, camera ${ev.camera} at ${time.textContent}: show the camera`);
    return li;
  }
}
