// Sightline operator UI: polls the camera list, draws one tile per camera and plays each streaming
// camera over WHEP (RFC 9725), raw or annotated (a per-tile switch re-negotiates in place). Plain ES
// module, no build step, no dependencies.

const POLL_MS = 2000;
const ICE_WAIT_MS = 1000;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 10000;
const DISCONNECTED_GRACE_MS = 4000;

const params = new URLSearchParams(location.search);
const token = params.get('token') || '';
const focus = params.get('camera');

// Test hook: camera id -> Player ({pc, video, state, ...}); tests read pc.getStats() and the video.
const players = new Map();
window.sightline = { players };

const tiles = new Map(); // camera id -> {el, refs, state}
const $ = (id) => document.getElementById(id);

function withAuth(headers = {}) {
  return token ? { ...headers, Authorization: `Bearer ${token}` } : headers;
}

function pageURL(camera) {
  const p = new URLSearchParams();
  if (camera) p.set('camera', camera);
  if (token) p.set('token', token);
  const q = p.toString();
  return q ? `?${q}` : location.pathname;
}

async function errorText(res) {
  const text = await res.text().catch(() => '');
  try { return JSON.parse(text).error || text; } catch { return text || res.statusText; }
}

function deleteSession(url) {
  // keepalive lets the request outlive the page on unload.
  fetch(url, { method: 'DELETE', headers: withAuth(), keepalive: true }).catch(() => {});
}

// Resolves when ICE gathering completes or after ms, whichever comes first.
function iceGathered(pc, ms) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    };
    const check = () => { if (pc.iceGatheringState === 'complete') done(); };
    const timer = setTimeout(done, ms);
    pc.addEventListener('icegatheringstatechange', check);
  });
}

// Player owns one camera's RTCPeerConnection and WHEP session, and reconnects with capped, jittered
// exponential backoff. state: idle, connecting, waiting for keyframe, playing, retrying, stopped.
class Player {
  constructor(id, video, onChange, variant = 'raw') {
    this.id = id;
    this.variant = variant; // raw: the camera's own video; annotated: boxes drawn in, re-encoded
    this.video = video;
    this.onChange = onChange;
    this.pc = null;
    this.state = 'idle';
    this.reason = '';
    this.session = null; // absolute URL of the WHEP session (the POST's Location)
    this.attempt = 0;
    this.timer = 0;
    this.stopped = false;
    const framed = () => {
      if (!this.pc || !video.videoWidth) return;
      this.attempt = 0;
      this.setState('playing');
      this.onChange(this); // resolution may have changed
    };
    video.addEventListener('playing', framed);
    video.addEventListener('resize', framed);
  }

  setState(state, reason = '') {
    if (this.state === state && this.reason === reason) return;
    this.state = state;
    this.reason = reason;
    this.onChange(this);
  }

  async connect() {
    clearTimeout(this.timer);
    this.timer = 0;
    this.close();
    if (this.stopped) return;
    const pc = new RTCPeerConnection();
    this.pc = pc;
    this.setState('connecting');
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.ontrack = (ev) => {
      if (pc !== this.pc || ev.track.kind !== 'video') return;
      this.video.srcObject = new MediaStream([ev.track]);
      this.video.play().catch(() => {}); // muted autoplay; a refusal only delays the first frame
    };
    pc.onconnectionstatechange = () => {
      if (pc !== this.pc) return;
      const s = pc.connectionState;
      if (s === 'connected' && this.state !== 'playing') this.setState('waiting for keyframe');
      if (s === 'failed' || s === 'closed') this.retry(`connection ${s}`);
      if (s === 'disconnected') {
        setTimeout(() => {
          if (pc === this.pc && pc.connectionState === 'disconnected') this.retry('connection lost');
        }, DISCONNECTED_GRACE_MS);
      }
    };
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await iceGathered(pc, ICE_WAIT_MS);
      if (pc !== this.pc) return;
      const path = this.variant === 'annotated' ? '/annotated' : '';
      const res = await fetch(`/whep/${encodeURIComponent(this.id)}${path}`, {
        method: 'POST',
        headers: withAuth({ 'Content-Type': 'application/sdp' }),
        body: pc.localDescription.sdp,
      });
      const loc = res.headers.get('Location');
      const session = loc ? new URL(loc, location.href).href : null;
      if (pc !== this.pc) { // stopped or restarted while the POST was in flight
        if (res.ok && session) deleteSession(session);
        return;
      }
      if (res.status !== 201) throw new Error(`WHEP ${res.status}: ${await errorText(res)}`);
      this.session = session;
      await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
      // A server that ends the session sends a DTLS close: reconnect now rather than waiting for ICE
      // to time out (about 5 s to "disconnected", then the grace period).
      const dtls = pc.getTransceivers()[0]?.receiver.transport;
      if (dtls) {
        dtls.onstatechange = () => {
          if (pc === this.pc && (dtls.state === 'closed' || dtls.state === 'failed')) this.retry(`DTLS ${dtls.state}`);
        };
      }
    } catch (err) {
      if (pc === this.pc) this.retry(err.message || String(err));
    }
  }

  // setVariant switches between the raw and the annotated track: a new WHEP session replaces the old
  // one (the page stays).
  setVariant(variant) {
    if (variant === this.variant) return;
    this.variant = variant;
    if (!this.stopped) this.restart();
  }

  // restart reconnects now, forgetting the backoff (the camera came back).
  restart() {
    this.attempt = 0;
    this.connect();
  }

  retry(reason) {
    if (this.stopped) return;
    this.close();
    clearTimeout(this.timer);
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt);
    this.attempt++;
    this.setState('retrying', reason);
    this.timer = setTimeout(() => this.connect(), base * (0.75 + Math.random() / 2));
  }

  close() {
    if (this.pc) {
      this.pc.ontrack = null;
      this.pc.onconnectionstatechange = null;
      this.pc.close();
      this.pc = null;
    }
    if (this.session) {
      deleteSession(this.session);
      this.session = null;
    }
    this.video.srcObject = null;
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.close();
    this.setState('stopped');
  }
}

const KINDS = {
  streaming: 'streaming',
  starting: 'connecting',
  connecting: 'connecting',
  reconnecting: 'reconnecting',
  stopped: 'offline',
  disabled: 'offline',
};

function formatBitrate(bps) {
  if (!Number.isFinite(bps) || bps <= 0) return '–';
  if (bps >= 1e6) return `${(bps / 1e6).toFixed(1)} Mbit/s`;
  return `${Math.round(bps / 1e3)} kbit/s`;
}

function createTile(cam) {
  const el = $('tile-template').content.firstElementChild.cloneNode(true);
  el.dataset.camera = cam.id;
  const q = (sel) => el.querySelector(sel);
  const refs = {
    link: q('.tile-link'), badge: q('.badge'), video: q('video'), player: q('.player-state'),
    error: q('.error'), fps: q('.fps'), bitrate: q('.bitrate'), viewers: q('.viewers'),
    restarts: q('.restarts'), resolution: q('.resolution'), variant: q('.variant'),
  };
  const headingId = `cam-${cam.id.replace(/[^A-Za-z0-9_-]/g, '_')}`;
  refs.link.id = headingId;
  refs.link.textContent = cam.id;
  refs.link.href = pageURL(cam.id);
  el.setAttribute('aria-labelledby', headingId);
  refs.video.setAttribute('aria-label', `Live video of camera ${cam.id}`);
  const tile = { el, refs, state: '', variant: 'raw' };
  refs.variant.addEventListener('click', () => {
    tile.variant = tile.variant === 'annotated' ? 'raw' : 'annotated';
    showVariant(tile);
    players.get(cam.id)?.setVariant(tile.variant);
  });
  showVariant(tile);
  tiles.set(cam.id, tile);
  $('grid').append(el);
  showPlayer(tile, null);
  return tile;
}

function showVariant(tile) {
  const on = tile.variant === 'annotated';
  tile.el.dataset.variant = tile.variant;
  tile.refs.variant.setAttribute('aria-pressed', String(on));
  setText(tile.refs.variant, on ? 'annotated' : 'raw');
  tile.refs.variant.title = on ? 'Showing boxes drawn into the video; click for the raw camera video'
    : 'Showing the raw camera video; click for the annotated video (boxes drawn in)';
}

function showPlayer(tile, player) {
  const { refs } = tile;
  const state = player ? player.state : 'idle';
  let text = player ? state : ({ offline: 'offline', streaming: 'starting player' }[KINDS[tile.state]] || 'waiting for camera');
  if (player && state === 'retrying' && player.reason) text = `retrying: ${player.reason}`;
  setText(refs.player, text);
  refs.player.dataset.state = state;
  const v = refs.video;
  setText(refs.resolution, player && v.videoWidth ? `${v.videoWidth}×${v.videoHeight}` : '–');
}

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text; // untouched nodes keep screen readers quiet
}

function updateTile(cam) {
  const tile = tiles.get(cam.id) || createTile(cam);
  const { refs } = tile;
  const st = cam.status || {};
  const state = st.state || (cam.enabled === false ? 'disabled' : 'starting');
  const kind = KINDS[state] || 'offline';
  setText(refs.badge, kind === state ? kind : `${kind} · ${state}`);
  refs.badge.dataset.kind = kind;
  refs.badge.dataset.state = state;
  refs.badge.setAttribute('aria-label', `state ${state}`);
  setText(refs.fps, Number.isFinite(st.fps) ? st.fps.toFixed(1) : '–');
  setText(refs.bitrate, formatBitrate(st.bitrate_bps));
  setText(refs.viewers, String(cam.viewers ?? '–'));
  setText(refs.restarts, String(st.restart_count ?? 0));
  refs.error.hidden = !st.last_error;
  setText(refs.error, st.last_error ? `${state === 'streaming' ? 'Last error' : 'Error'}: ${st.last_error}` : '');

  let player = players.get(cam.id);
  if (kind === 'offline') {
    if (player) stopPlayer(cam.id);
  } else if (!player && state === 'streaming') {
    player = new Player(cam.id, refs.video, (p) => showPlayer(tile, p), tile.variant);
    players.set(cam.id, player);
    player.connect();
  } else if (player && state === 'streaming' && tile.state !== 'streaming' && player.state !== 'playing') {
    player.restart(); // the camera is back: do not wait out the backoff
  }
  tile.state = state;
  if (!players.has(cam.id)) showPlayer(tile, null);
}

function stopPlayer(id) {
  const player = players.get(id);
  if (!player) return;
  player.stop();
  players.delete(id);
  const tile = tiles.get(id);
  if (tile) showPlayer(tile, null);
}

function render(cameras) {
  const shown = focus ? cameras.filter((c) => c.id === focus) : cameras;
  const seen = new Set();
  for (const cam of shown) {
    seen.add(cam.id);
    updateTile(cam);
  }
  for (const [id, tile] of tiles) {
    if (seen.has(id)) continue;
    stopPlayer(id);
    tile.el.remove();
    tiles.delete(id);
  }
  $('empty').hidden = shown.length > 0;
  $('empty').textContent = focus ? `Camera "${focus}" not found.` : 'No cameras configured.';
  const streaming = shown.filter((c) => c.status && c.status.state === 'streaming').length;
  setText($('summary'), `${streaming} of ${shown.length} streaming`);
}

function banner(text) {
  $('banner').hidden = !text;
  setText($('banner'), text || '');
}

async function poll() {
  try {
    const res = await fetch('/api/v1/cameras', { headers: withAuth(), cache: 'no-store' });
    if (!res.ok) throw new Error(`HTTP ${res.status}: ${await errorText(res)}`);
    const body = await res.json();
    render(Array.isArray(body.cameras) ? body.cameras : []);
    banner('');
  } catch (err) {
    banner(`Camera list unavailable: ${err.message || err}`);
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

function init() {
  if (focus) {
    $('grid').classList.add('single');
    $('crumb').hidden = false;
    $('back').href = pageURL(null);
    document.title = `${focus} · Sightline`;
  }
  $('home').href = pageURL(null);
  window.addEventListener('pagehide', () => {
    for (const id of [...players.keys()]) stopPlayer(id);
  });
  poll();
}

init();
