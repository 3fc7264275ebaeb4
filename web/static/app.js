// Sightline operator UI: polls the camera list, draws one tile per camera and plays each streaming
// camera over WHEP (RFC 9725), raw or annotated (a per-tile switch re-negotiates in place). On the raw
// track it draws the analytics boxes itself, on a canvas over the video, from the `meta` data channel
// (matched to each painted frame by RTP timestamp); the annotated track has them burned in. An alert
// feed (/ws/alerts) lists rule events; clicking a tile or an alert shows that camera large. Plain ES
// modules (common, player, overlay, alerts), no build step, no dependencies.

import { $, withAuth, pageURL, errorText, setText, token } from './common.js';
import { Player, META_STALE_MS, LATENCY_STALE_MS } from './player.js';
import { clearOverlay, drawOverlay } from './overlay.js';
import { AlertFeed } from './alerts.js';

const POLL_MS = 2000;
const STATS_MS = 1000;

const params = new URLSearchParams(location.search);
const startVariant = params.get('variant') === 'annotated' ? 'annotated' : 'raw';
let focus = params.get('camera');
let boxesOn = true;
let cameras = []; // the last camera list from the API

// Test hooks: camera id -> Player ({pc, video, state, timing, ...}), camera id -> tile ({drawn, ...}),
// and the alert feed ({items, state}). Tests read pc.getStats(), the video and the overlay's last drawing.
const players = new Map();
const tiles = new Map(); // camera id -> {id, el, refs, state, variant, rules, drawn}
window.sightline = { players, tiles, alerts: null };

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
  waiting: 'waiting', // a whip: camera without a publisher
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
  let text = player ? state : ({ offline: 'offline', streaming: 'starting player', waiting: 'waiting for a WHIP publisher' }[KINDS[tile.state]] || 'waiting for camera');
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

function init() {
  applyFocus();
  $('back').href = pageURL(null);
  $('home').href = pageURL(null);
  if (token) $('publish-link').href = `publish.html?token=${encodeURIComponent(token)}`;
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
  const feed = new AlertFeed($('alert-list'), $('alerts-state'), $('alerts-empty'), (camera) => setFocus(camera));
  window.sightline.alerts = feed;
  feed.connect();
  poll();
  pollStats();
}

init();
