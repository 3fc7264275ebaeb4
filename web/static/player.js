// Player: one camera's WHEP session in an RTCPeerConnection (RFC 9725), with reconnects, the `meta`
// data channel's recent messages by RTP timestamp, and what getStats and requestVideoFrameCallback say
// about playback.

import { withAuth, errorText } from './common.js';

const ICE_WAIT_MS = 1000;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 10000;
const DISCONNECTED_GRACE_MS = 4000;
const META_KEEP = 64; // recent meta messages kept per player, by RTP timestamp (about 13 s at 5 fps)
export const META_STALE_MS = 1000; // the fallback (latest) meta is drawn only while younger than this
const FIRST_FRAME_POLL_MS = 20;
const FIRST_FRAME_WATCH_MS = 20000;
export const LATENCY_STALE_MS = 3000;

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
export class Player {
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
