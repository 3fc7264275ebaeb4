// Sightline operator UI: polls the camera list, draws one tile per camera and plays each streaming
// camera over WHEP (RFC 9725), raw or annotated (a per-tile switch re-negotiates in place). On the raw
// track it draws the analytics boxes itself, on a canvas over the video, from the `meta` data channel
// (matched to each painted frame by RTP timestamp); the annotated track has them burned in. An alert
// feed (/ws/alerts) lists rule events; clicking a tile or an alert shows that camera large. Plain ES
// module, no build step, no dependencies.

const POLL_MS = 2000;
const STATS_MS = 1000;
const ICE_WAIT_MS = 1000;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 10000;
const DISCONNECTED_GRACE_MS = 4000;
const META_KEEP = 64; // recent meta messages kept per player, by RTP timestamp (about 13 s at 5 fps)
const META_STALE_MS = 1000; // the fallback (latest) meta is drawn only while younger than this
const FIRST_FRAME_POLL_MS = 20;
const FIRST_FRAME_WATCH_MS = 20000;
const LATENCY_STALE_MS = 3000;
const ALERTS_MAX = 50;
const ALERTS_RETRY_MAX_MS = 30000;
const ALERTS_OFF_RETRY_MS = 60000; // analytics off: ask again now and then (config may be reloaded)

// Class colours: the first ten of Sasha Trubetskoy's "20 distinct colours", as overlay/ burns them
// into the annotated track, so both tracks show a class in the same colour.
const PALETTE = [
  [230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48], [145, 30, 180],
  [70, 240, 240], [240, 50, 230], [210, 245, 60], [0, 128, 128], [255, 225, 25],
];
const ZONE_COLOR = [255, 225, 25];

const params = new URLSearchParams(location.search);
const token = params.get('token') || '';
const startVariant = params.get('variant') === 'annotated' ? 'annotated' : 'raw';
let focus = params.get('camera');
let boxesOn = true;
let cameras = []; // the last camera list from the API

// Test hooks: camera id -> Player ({pc, video, state, timing, ...}), camera id -> tile ({drawn, ...}),
// and the alert feed ({items, state}). Tests read pc.getStats(), the video and the overlay's last drawing.
const players = new Map();
const tiles = new Map(); // camera id -> {id, el, refs, state, variant, rules, drawn}
window.sightline = { players, tiles, alerts: null };
const $ = (id) => document.getElementById(id);

function withAuth(headers = {}) {
  return token ? { ...headers, Authorization: `Bearer ${token}` } : headers;
}

// withTokenQuery adds ?token= to a same-origin URL for requests that cannot carry a header (<img>).
function withTokenQuery(path) {
  const u = new URL(path, location.href);
  if (token) u.searchParams.set('token', token);
  return u.href;
}

function pageURL(camera) {
  const p = new URLSearchParams();
  if (camera) p.set('camera', camera);
  if (token) p.set('token', token);
  const q = p.toString();
  return q ? `?${q}` : location.pathname;
}

async function errorBody(res) {
  const text = await res.text().catch(() => '');
  try {
    const j = JSON.parse(text);
    return { code: j.code || '', message: j.error || text };
  } catch {
    return { code: '', message: text || res.statusText };
  }
}

async function errorText(res) {
  return (await errorBody(res)).message;
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

// inboundVideo resolves to pc's inbound video RTP stats (or null).
async function inboundVideo(pc) {
  const report = await pc.getStats();
  let v = null;
  report.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') v = s; });
  return v;
}

// Player owns one camera's RTCPeerConnection and WHEP session, and reconnects with capped, jittered
// exponential backoff. state: idle, connecting, waiting for keyframe, playing, retrying, stopped.
// Each session opens the `meta` data channel; the player keeps the recent messages by RTP timestamp.
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
    // Per session: performance.now() just before the WHEP POST, when the answer was applied, and when
    // getStats first reported framesDecoded > 0 (polled every FIRST_FRAME_POLL_MS).
    this.timing = null;
    this.stats = {}; // from getStats: fps, jitterMs, framesDecoded
    this.prevStats = null;
    this.latency = null; // {ms, at}: expectedDisplayTime - captureTime, when the browser provides captureTime
    this.resetMeta();
    const framed = () => {
      if (!this.pc || !video.videoWidth) return;
      this.attempt = 0;
      this.setState('playing');
      this.onChange(this); // resolution may have changed
    };
    video.addEventListener('playing', framed);
    video.addEventListener('resize', framed);
  }

  resetMeta() {
    this.metas = new Map(); // rtp -> meta, oldest first
    this.latestMeta = null;
    this.latestMetaAt = 0; // performance.now() when it arrived
    this.metaCount = 0;
    this.eventCount = 0;
    this.matched = 0; // painted frames drawn with their own meta
    this.fallback = 0; // painted frames drawn with the latest meta
  }

  onMeta(data) {
    let m;
    try { m = JSON.parse(data); } catch { return; }
    if (!m || typeof m !== 'object') return;
    if (m.type === 'event') {
      this.eventCount++;
      return;
    }
    if (!Number.isFinite(m.rtp) || !Array.isArray(m.objects)) return;
    const rtp = m.rtp >>> 0;
    this.metas.delete(rtp);
    this.metas.set(rtp, m);
    if (this.metas.size > META_KEEP) this.metas.delete(this.metas.keys().next().value);
    this.latestMeta = m;
    this.latestMetaAt = performance.now();
    this.metaCount++;
  }

  // metaFor returns what to draw on the painted frame with RTP timestamp rtp: its own meta
  // ({matched: true}), else the newest meta of an earlier frame (normally the latest: the model's
  // answer arrives after the raw frame was shown), else the latest one; never one older than
  // META_STALE_MS. prior is the meta before the chosen one and dt the frame's distance from it in
  // seconds, so that boxes can be carried forward along each track's motion.
  metaFor(rtp) {
    if (!this.latestMeta || performance.now() - this.latestMetaAt > META_STALE_MS) return null;
    if (!Number.isFinite(rtp)) return { meta: this.latestMeta, matched: false, prior: null, dt: 0 };
    rtp >>>= 0;
    const exact = this.metas.get(rtp);
    if (exact) return { meta: exact, matched: true, prior: null, dt: 0 };
    const list = [...this.metas.values()];
    for (let i = list.length - 1; i >= 0; i--) {
      const ticks = (rtp - list[i].rtp) | 0; // signed: RTP timestamps wrap
      if (ticks >= 0) return { meta: list[i], matched: false, prior: list[i - 1] || null, dt: ticks / 90000 };
    }
    return { meta: this.latestMeta, matched: false, prior: null, dt: 0 };
  }

  // noteFrame takes a painted frame's requestVideoFrameCallback metadata.
  noteFrame(md) {
    // captureTime (sender's capture clock mapped to ours, from RTCP sender reports or abs-capture-time)
    // is absent in many browsers; then the tile shows the jitter buffer delay instead.
    if (Number.isFinite(md.captureTime) && md.captureTime > 0 && Number.isFinite(md.expectedDisplayTime)) {
      const ms = md.expectedDisplayTime - md.captureTime;
      const prev = this.latency && performance.now() - this.latency.at < LATENCY_STALE_MS ? this.latency.ms : ms;
      this.latency = { ms: prev + (ms - prev) / 8, at: performance.now() };
    }
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
    // The gateway answers a data channel labelled "meta" with the camera's analytics metadata.
    const dc = pc.createDataChannel('meta');
    dc.onmessage = (ev) => { if (pc === this.pc && typeof ev.data === 'string') this.onMeta(ev.data); };
    this.resetMeta();
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
      const timing = { variant: this.variant, post: performance.now(), answer: 0, firstDecoded: 0 };
      this.timing = timing;
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
      timing.answer = performance.now();
      this.watchFirstFrame(pc, timing);
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

  // watchFirstFrame records in timing when pc first reports a decoded frame.
  watchFirstFrame(pc, timing) {
    const deadline = performance.now() + FIRST_FRAME_WATCH_MS;
    const tick = async () => {
      if (pc !== this.pc || performance.now() > deadline) return;
      const v = await inboundVideo(pc).catch(() => null);
      if (pc !== this.pc) return;
      if (v && v.framesDecoded > 0) {
        timing.firstDecoded = performance.now();
        this.onChange(this);
        return;
      }
      setTimeout(tick, FIRST_FRAME_POLL_MS);
    };
    tick();
  }

  // sampleStats reads getStats: decoded fps and the mean jitter buffer delay since the last sample.
  async sampleStats() {
    const pc = this.pc;
    if (!pc) {
      this.stats = {};
      return;
    }
    const v = await inboundVideo(pc).catch(() => null);
    if (pc !== this.pc) return;
    if (!v) {
      this.stats = {};
      return;
    }
    const now = performance.now();
    const prev = this.prevStats && this.prevStats.pc === pc ? this.prevStats : null;
    const cur = {
      pc, at: now, frames: v.framesDecoded || 0,
      delay: v.jitterBufferDelay || 0, emitted: v.jitterBufferEmittedCount || 0,
    };
    const out = { framesDecoded: cur.frames, fps: v.framesPerSecond };
    if (!Number.isFinite(out.fps) && prev && now > prev.at) out.fps = (cur.frames - prev.frames) * 1000 / (now - prev.at);
    if (prev && cur.emitted > prev.emitted) {
      out.jitterMs = (1000 * (cur.delay - prev.delay)) / (cur.emitted - prev.emitted);
    } else if (cur.emitted > 0) {
      out.jitterMs = (1000 * cur.delay) / cur.emitted;
    }
    this.prevStats = cur;
    this.stats = out;
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
    this.stats = {};
    this.prevStats = null;
    this.latency = null;
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.close();
    this.setState('stopped');
  }
}

// ---- Overlay: boxes drawn by the browser over the raw track ----

function classColor(cls) {
  const n = Number.isInteger(cls) ? Math.abs(cls) : 0;
  return PALETTE[n % PALETTE.length];
}

const rgb = (c) => `rgb(${c[0]},${c[1]},${c[2]})`;

// contentRect is where the picture lies inside the video element (canvas pixels), honouring the
// element's object-fit (contain letterboxes, cover crops, fill stretches; centred, the default position).
function contentRect(video, cw, ch, vw, vh) {
  const fit = getComputedStyle(video).objectFit;
  let sx = cw / vw;
  let sy = ch / vh;
  if (fit === 'contain' || fit === 'scale-down') sx = sy = Math.min(sx, sy);
  else if (fit === 'cover') sx = sy = Math.max(sx, sy);
  else if (fit === 'none') sx = sy = 1;
  if (fit === 'scale-down' && sx > 1) sx = sy = 1;
  const w = vw * sx;
  const h = vh * sy;
  return { x: (cw - w) / 2, y: (ch - h) / 2, w, h };
}

function clearOverlay(tile) {
  if (!tile.drawn) return;
  const c = tile.refs.overlay;
  c.getContext('2d').clearRect(0, 0, c.width, c.height);
  tile.drawn = null;
}

function objectLabel(o) {
  const name = o.label || `class ${o.cls}`;
  const id = o.id ? ` #${o.id}` : '';
  const score = Number.isFinite(o.score) ? ` ${o.score.toFixed(2)}` : '';
  return `${name}${id}${score}`;
}

const validBox = (b) => Array.isArray(b) && b.length === 4 && b.every(Number.isFinite);

// predictedBoxes returns hit's objects with their boxes carried forward to the painted frame: a
// tracked object seen in the prior meta too moves on at the same speed for up to PREDICT_MAX_S (the
// annotated track does the same with the tracker's prediction). Untracked objects stay where found.
const PREDICT_MAX_S = 0.5;
function predictedBoxes(hit) {
  const prior = new Map();
  const span = hit.prior ? ((hit.meta.rtp - hit.prior.rtp) | 0) / 90000 : 0;
  const dt = Math.min(hit.dt, PREDICT_MAX_S);
  if (span > 0 && span <= 1 && dt > 0) {
    for (const o of hit.prior.objects) if (o.id && validBox(o.box)) prior.set(o.id, o.box);
  }
  const out = [];
  for (const o of hit.meta.objects) {
    if (!validBox(o.box)) continue;
    const before = o.id ? prior.get(o.id) : undefined;
    let box = o.box;
    if (before) {
      const k = dt / span;
      let [x, y, w, h] = box.map((v, i) => v + (v - before[i]) * k);
      w = Math.max(0, w);
      h = Math.max(0, h);
      x = Math.min(Math.max(x, 0), 1 - w);
      y = Math.min(Math.max(y, 0), 1 - h);
      box = [x, y, Math.min(w, 1), Math.min(h, 1)];
    }
    out.push({ o, box });
  }
  return out;
}

// drawOverlay paints the boxes of the meta matching the painted frame md (requestVideoFrameCallback
// metadata) onto the tile's canvas, in whole pixels so that edges keep their exact class colour.
// tile.drawn records what was drawn (canvas pixels) for tests and diagnostics.
function drawOverlay(tile, player, md) {
  const canvas = tile.refs.overlay;
  const video = tile.refs.video;
  const dpr = window.devicePixelRatio || 1;
  const cw = Math.round(video.clientWidth * dpr);
  const ch = Math.round(video.clientHeight * dpr);
  if (canvas.width !== cw || canvas.height !== ch) {
    canvas.width = cw;
    canvas.height = ch;
  }
  const ctx = canvas.getContext('2d');
  ctx.clearRect(0, 0, cw, ch);
  const vw = md.width || video.videoWidth;
  const vh = md.height || video.videoHeight;
  if (!cw || !ch || !vw || !vh) {
    tile.drawn = null;
    return;
  }
  const r = contentRect(video, cw, ch, vw, vh);
  const px = (fx) => Math.round(r.x + fx * r.w);
  const py = (fy) => Math.round(r.y + fy * r.h);
  const hit = player.metaFor(md.rtpTimestamp);
  const drawn = {
    rtp: md.rtpTimestamp, metaRtp: hit ? hit.meta.rtp : null, matched: !!(hit && hit.matched), ahead: hit ? hit.dt : 0,
    content: r, width: cw, height: ch, boxes: [],
  };
  ctx.save();
  ctx.beginPath();
  ctx.rect(r.x, r.y, r.w, r.h); // nothing outside the picture (cover crops)
  ctx.clip();

  // Configured zones and lines, thin, under the boxes.
  ctx.strokeStyle = rgb(ZONE_COLOR);
  ctx.lineWidth = Math.max(1, Math.round(dpr));
  for (const rule of tile.rules || []) {
    const pts = Array.isArray(rule.polygon) ? rule.polygon : Array.isArray(rule.line) ? rule.line : null;
    if (!pts || pts.length < 2) continue;
    ctx.beginPath();
    pts.forEach((p, i) => (i ? ctx.lineTo(px(p[0]), py(p[1])) : ctx.moveTo(px(p[0]), py(p[1]))));
    if (rule.polygon) ctx.closePath();
    ctx.stroke();
  }

  if (hit) {
    if (hit.matched) player.matched++;
    else player.fallback++;
    const boxes = predictedBoxes(hit);
    const t = Math.max(2, Math.round(2 * dpr)); // edge thickness
    const fontPx = Math.max(11, Math.round(12 * dpr));
    ctx.font = `${fontPx}px system-ui, sans-serif`;
    ctx.textBaseline = 'top';
    for (const { o, box } of boxes) {
      const [bx, by, bw, bh] = box;
      const x0 = px(bx);
      const y0 = py(by);
      const x1 = px(bx + bw);
      const y1 = py(by + bh);
      if (x1 - x0 < 2 * t || y1 - y0 < 2 * t) continue;
      const color = classColor(o.cls);
      ctx.fillStyle = rgb(color);
      ctx.fillRect(x0, y0, x1 - x0, t);
      ctx.fillRect(x0, y1 - t, x1 - x0, t);
      ctx.fillRect(x0, y0, t, y1 - y0);
      ctx.fillRect(x1 - t, y0, t, y1 - y0);
      const text = objectLabel(o);
      const lw = Math.ceil(ctx.measureText(text).width) + 2 * t;
      const lh = fontPx + t;
      const ly = y0 - lh >= r.y ? y0 - lh : y0; // above the box, or inside it at the top edge
      const lx = Math.max(Math.round(r.x), Math.min(x0, Math.round(r.x + r.w) - lw)); // keep it in the picture
      ctx.fillRect(lx, ly, lw, lh);
      const luma = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2];
      ctx.fillStyle = luma > 140 ? '#000' : '#fff';
      ctx.fillText(text, lx + t, ly + Math.round(t / 2));
      drawn.boxes.push({ x0, y0, x1, y1, t, color, text, label: { x: lx, y: ly, w: lw, h: lh } });
    }
  }
  ctx.restore();
  tile.drawn = drawn;
}

// watchFrames runs for the tile's life: on every painted frame it hands the frame's metadata to the
// player and redraws (raw track, boxes on) or clears the overlay.
function watchFrames(tile) {
  const video = tile.refs.video;
  if (!('requestVideoFrameCallback' in video)) return;
  let handle = 0;
  const onFrame = (_now, md) => {
    handle = video.requestVideoFrameCallback(onFrame);
    const p = players.get(tile.id);
    if (!p || p.video !== video || !p.pc) {
      clearOverlay(tile);
      return;
    }
    p.noteFrame(md);
    if (tile.variant === 'raw' && boxesOn) drawOverlay(tile, p, md);
    else clearOverlay(tile);
  };
  const arm = () => {
    if (handle) video.cancelVideoFrameCallback(handle);
    handle = video.requestVideoFrameCallback(onFrame);
  };
  video.addEventListener('playing', arm); // a new source: make sure a callback waits for its frames
  video.addEventListener('emptied', () => clearOverlay(tile));
  arm();
}

// ---- Tiles ----

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

const ms = (v) => (Number.isFinite(v) ? `${v < 10 ? v.toFixed(1) : Math.round(v)} ms` : '–');

function createTile(cam, after) {
  const el = $('tile-template').content.firstElementChild.cloneNode(true);
  el.dataset.camera = cam.id;
  const q = (sel) => el.querySelector(sel);
  const refs = {
    link: q('.tile-link'), badge: q('.badge'), video: q('video'), overlay: q('.overlay'), screen: q('.screen'),
    player: q('.player-state'), error: q('.error'), fps: q('.fps'), playFps: q('.play-fps'),
    bitrate: q('.bitrate'), viewers: q('.viewers'), restarts: q('.restarts'), resolution: q('.resolution'),
    variant: q('.variant'), latency: q('.latency'), latencyLabel: q('.latency-label'),
    latencyStat: q('.latency-stat'), detector: q('.detector'), inference: q('.inference'),
    analysed: q('.analysed'), objects: q('.objects'), analyticsStats: el.querySelectorAll('.analytics-stat'),
  };
  const headingId = `cam-${cam.id.replace(/[^A-Za-z0-9_-]/g, '_')}`;
  refs.link.id = headingId;
  refs.link.textContent = cam.id;
  refs.link.href = pageURL(cam.id);
  el.setAttribute('aria-labelledby', headingId);
  refs.video.setAttribute('aria-label', `Live video of camera ${cam.id}`);
  const tile = { id: cam.id, el, refs, state: '', variant: startVariant, rules: [], drawn: null };
  refs.variant.addEventListener('click', () => {
    tile.variant = tile.variant === 'annotated' ? 'raw' : 'annotated';
    showVariant(tile);
    players.get(cam.id)?.setVariant(tile.variant);
  });
  // A plain click opens the camera large in place; modified clicks keep the link's own behaviour.
  refs.link.addEventListener('click', (ev) => {
    if (ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
    ev.preventDefault();
    setFocus(cam.id);
  });
  refs.screen.addEventListener('click', () => { if (focus !== cam.id) setFocus(cam.id); });
  showVariant(tile);
  tiles.set(cam.id, tile);
  if (after) after.after(el);
  else $('grid').prepend(el);
  showPlayer(tile, null);
  watchFrames(tile);
  return tile;
}

function showVariant(tile) {
  const on = tile.variant === 'annotated';
  tile.el.dataset.variant = tile.variant;
  tile.refs.variant.setAttribute('aria-pressed', String(on));
  setText(tile.refs.variant, on ? 'annotated' : 'raw');
  tile.refs.variant.title = on ? 'Showing boxes drawn into the video; click for the raw camera video'
    : 'Showing the raw camera video; click for the annotated video (boxes drawn in)';
  if (on) clearOverlay(tile); // burned in there: never draw twice
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

// showLiveStats shows what this browser measures: decoded fps, latency, objects in the latest meta.
function showLiveStats(tile, player) {
  const { refs } = tile;
  const s = (player && player.pc && player.stats) || {};
  setText(refs.playFps, Number.isFinite(s.fps) ? s.fps.toFixed(0) : '–');
  const lat = player && player.latency && performance.now() - player.latency.at < LATENCY_STALE_MS ? player.latency : null;
  if (lat) {
    setText(refs.latencyLabel, 'e2e latency');
    setText(refs.latency, ms(lat.ms));
    refs.latencyStat.title = 'Capture to display: expectedDisplayTime − captureTime of the painted frames (requestVideoFrameCallback)';
  } else {
    setText(refs.latencyLabel, 'jitter buffer');
    setText(refs.latency, ms(s.jitterMs));
    refs.latencyStat.title = 'This browser gives no capture time: mean jitter buffer delay over the last second ' +
      '(getStats jitterBufferDelay / jitterBufferEmittedCount), one part of the end-to-end latency';
  }
  const m = player && player.latestMeta && performance.now() - player.latestMetaAt <= 2 * META_STALE_MS ? player.latestMeta : null;
  setText(refs.objects, m ? String(m.objects.length) : '–');
}

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text; // untouched nodes keep screen readers quiet
}

function updateTile(cam, after) {
  const tile = tiles.get(cam.id) || createTile(cam, after);
  const { refs } = tile;
  const st = cam.status || {};
  const state = st.state || (cam.enabled === false ? 'disabled' : 'starting');
  const kind = KINDS[state] || 'offline';
  setText(refs.badge, kind === state ? kind : `${kind} · ${state}`);
  refs.badge.dataset.kind = kind;
  refs.badge.dataset.state = state;
  refs.badge.setAttribute('aria-label', `state ${state}`);
  setText(refs.fps, Number.isFinite(st.fps) ? `${st.fps.toFixed(1)} fps` : '–');
  setText(refs.bitrate, formatBitrate(st.bitrate_bps));
  setText(refs.viewers, String(cam.viewers ?? '–'));
  refs.viewers.parentElement.title = Number.isFinite(cam.viewersRaw)
    ? `WebRTC viewers of this camera: ${cam.viewersRaw} raw, ${cam.viewersAnnotated ?? 0} annotated` : 'WebRTC viewers of this camera';
  setText(refs.restarts, String(st.restart_count ?? 0));
  refs.error.hidden = !st.last_error;
  setText(refs.error, st.last_error ? `${state === 'streaming' ? 'Last error' : 'Error'}: ${st.last_error}` : '');
  tile.rules = Array.isArray(cam.rules) ? cam.rules : [];
  const a = cam.analytics;
  for (const e of refs.analyticsStats) e.hidden = !a;
  if (a) {
    const parts = [a.detector || '?', a.decoder || 'no frame yet'];
    if (a.keyframesOnly) parts.push('keyframes');
    setText(refs.detector, parts.join(' · '));
    setText(refs.inference, ms(a.inferenceMs));
    setText(refs.analysed, Number.isFinite(a.analysedFps) ? `${a.analysedFps.toFixed(1)} fps` : '–');
    refs.detector.parentElement.title = `Object detector and the decoder feeding it (analytics ${a.state || '?'}${a.lastError ? `: ${a.lastError}` : ''})`;
  }

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
  return tile;
}

function stopPlayer(id) {
  const player = players.get(id);
  if (!player) return;
  player.stop();
  players.delete(id);
  const tile = tiles.get(id);
  if (tile) {
    showPlayer(tile, null);
    showLiveStats(tile, null);
    clearOverlay(tile);
  }
}

function render(list) {
  const shown = focus ? list.filter((c) => c.id === focus) : list;
  const seen = new Set();
  let prev = null;
  for (const cam of shown) {
    seen.add(cam.id);
    prev = updateTile(cam, prev).el; // a new tile goes right after the previous camera's
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

// setFocus shows one camera large (id) or the grid (null) without reloading: the focused tile keeps its
// player; the others stop theirs. push adds a history entry (Back returns to the grid).
function setFocus(id, push = true) {
  focus = id || null;
  if (push) history.pushState({ camera: focus }, '', pageURL(focus));
  applyFocus();
  render(cameras);
  if (focus) window.scrollTo({ top: 0 });
}

function applyFocus() {
  $('grid').classList.toggle('single', !!focus);
  $('crumb').hidden = !focus;
  document.title = focus ? `${focus} · Sightline` : 'Sightline';
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
    cameras = Array.isArray(body.cameras) ? body.cameras : [];
    render(cameras);
    banner('');
  } catch (err) {
    banner(`Camera list unavailable: ${err.message || err}`);
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

async function pollStats() {
  try {
    await Promise.all([...players.values()].map((p) => p.sampleStats().catch(() => {})));
    for (const [id, tile] of tiles) showLiveStats(tile, players.get(id));
  } finally {
    setTimeout(pollStats, STATS_MS);
  }
}

// ---- Alert feed ----

// Characters a WebSocket subprotocol may hold (RFC 7230 tchar): such tokens travel as the subprotocol
// sightline.token.<token>, others as ?token=.
const TCHARS = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

// AlertFeed subscribes to /ws/alerts and lists the newest ALERTS_MAX events, newest first.
class AlertFeed {
  constructor(list, stateEl, emptyEl) {
    this.list = list;
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
    q('.alert-open').addEventListener('click', () => setFocus(ev.camera));
    q('.alert-open').setAttribute('aria-label',
      `${q('.alert-what').textContent}, ${q('.alert-object').textContent}, camera ${ev.camera} at ${time.textContent}: show the camera`);
    return li;
  }
}

function init() {
  applyFocus();
  $('back').href = pageURL(null);
  $('home').href = pageURL(null);
  for (const a of [$('back'), $('home')]) {
    a.addEventListener('click', (ev) => {
      if (ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
      ev.preventDefault();
      if (focus) setFocus(null);
    });
  }
  window.addEventListener('popstate', () => setFocus(new URLSearchParams(location.search).get('camera'), false));
  const boxes = $('boxes');
  boxes.addEventListener('click', () => {
    boxesOn = !boxesOn;
    boxes.setAttribute('aria-pressed', String(boxesOn));
    if (!boxesOn) for (const t of tiles.values()) clearOverlay(t);
  });
  window.addEventListener('pagehide', () => {
    for (const id of [...players.keys()]) stopPlayer(id);
  });
  const feed = new AlertFeed($('alert-list'), $('alerts-state'), $('alerts-empty'));
  window.sightline.alerts = feed;
  feed.connect();
  poll();
  pollStats();
}

init();
