// Publish page: sends this browser's camera, screen or a test pattern to a whip: camera over WHIP
// (RFC 9725), so a camera can be fed without OBS or ffmpeg. State is exposed as window.sightlinePublish.

import { $, errorText, setText, token, withAuth } from './common.js';

const params = new URLSearchParams(location.search);

const state = {
  state: 'idle', // idle | starting | connecting | publishing | stopping | failed
  camera: '',
  location: '', // the WHIP session URL
  error: '',
  pc: null,
  stream: null,
  timers: [],
  last: null, // previous outbound-rtp stats sample
};
window.sightlinePublish = state;

function show(next, error = '') {
  state.state = next;
  state.error = error;
  setText($('publish-state'), next);
  $('publish-state').dataset.state = next;
  $('publish-error').hidden = !error;
  setText($('publish-error'), error);
  const busy = next !== 'idle' && next !== 'failed';
  $('start').disabled = busy || !$('camera').value;
  $('stop').disabled = !busy;
  for (const id of ['camera', 'source', 'bitrate']) $(id).disabled = busy;
}

async function loadCameras() {
  const res = await fetch('/api/v1/cameras', { headers: withAuth() });
  if (!res.ok) throw new Error(`camera list: ${res.status} ${await errorText(res)}`);
  const { cameras } = await res.json();
  const whip = cameras.filter((c) => String(c.url).toLowerCase() === 'whip:');
  const select = $('camera');
  select.replaceChildren(...whip.map((c) => new Option(c.id, c.id)));
  const wanted = params.get('camera');
  if (wanted && whip.some((c) => c.id === wanted)) select.value = wanted;
  $('no-cameras').hidden = whip.length > 0;
  $('start').disabled = whip.length === 0;
}

// pattern is a moving test picture with a clock, for machines without a camera (and for tests).
function pattern() {
  const canvas = document.createElement('canvas');
  canvas.width = 1280;
  canvas.height = 720;
  const ctx = canvas.getContext('2d');
  let n = 0;
  const draw = () => {
    n++;
    ctx.fillStyle = `hsl(${(n * 2) % 360}, 45%, 30%)`;
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.fillStyle = '#fff';
    ctx.fillRect((n * 12) % canvas.width, 300, 80, 80);
    ctx.font = '64px monospace';
    ctx.fillText(new Date().toISOString().slice(11, 23), 40, 100);
  };
  draw();
  state.timers.push(setInterval(draw, 40));
  return canvas.captureStream(25);
}

async function mediaFor(source) {
  switch (source) {
    case 'camera':
      return navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 1280 }, height: { ideal: 720 } }, audio: false });
    case 'screen':
      return navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    default:
      return pattern();
  }
}

async function start(ev) {
  ev.preventDefault();
  const camera = $('camera').value;
  if (!camera) return;
  state.camera = camera;
  show('starting');
  try {
    const stream = await mediaFor($('source').value);
    state.stream = stream;
    $('preview').srcObject = stream;
    const [track] = stream.getVideoTracks();
    if (!track) throw new Error('the source gave no video track');
    track.contentHint = $('source').value === 'screen' ? 'detail' : 'motion';
    track.addEventListener('ended', () => stop('the source ended')); // e.g. screen sharing stopped
    const pc = new RTCPeerConnection();
    state.pc = pc;
    const maxBitrate = Math.max(100, Number($('bitrate').value) || 2500) * 1000;
    pc.addTransceiver(track, { direction: 'sendonly', streams: [stream], sendEncodings: [{ maxBitrate }] });
    pc.addEventListener('connectionstatechange', () => {
      if (state.pc !== pc) return;
      if (pc.connectionState === 'connected') show('publishing');
      if (pc.connectionState === 'failed') stop('the connection to the server failed', true);
    });
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      pc.addEventListener('icegatheringstatechange', () => { if (pc.iceGatheringState === 'complete') resolve(); });
      setTimeout(resolve, 2000); // host candidates are enough for a server on the LAN
    });
    const res = await fetch(`/whip/${encodeURIComponent(camera)}`, {
      method: 'POST', headers: withAuth({ 'Content-Type': 'application/sdp' }), body: pc.localDescription.sdp,
    });
    if (res.status !== 201) throw new Error(`WHIP ${res.status}: ${await errorText(res)}`);
    state.location = new URL(res.headers.get('Location'), location.href).href;
    await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
    if (state.pc === pc && state.state === 'starting') show('connecting');
    state.timers.push(setInterval(() => sample(pc), 1000));
  } catch (err) {
    await stop(String(err.message || err), true);
  }
}

async function sample(pc) {
  const stats = await pc.getStats();
  stats.forEach((s) => {
    if (s.type !== 'outbound-rtp' || s.kind !== 'video') return;
    setText($('stat-size'), s.frameWidth ? `${s.frameWidth}x${s.frameHeight}` : '–');
    setText($('stat-fps'), Number.isFinite(s.framesPerSecond) ? `${s.framesPerSecond.toFixed(0)} fps` : '–');
    setText($('stat-encoder'), s.encoderImplementation || '–');
    const prev = state.last;
    if (prev && s.timestamp > prev.timestamp) {
      const kbps = ((s.bytesSent - prev.bytesSent) * 8) / (s.timestamp - prev.timestamp);
      setText($('stat-bitrate'), `${kbps.toFixed(0)} kbit/s`);
    }
    state.last = { timestamp: s.timestamp, bytesSent: s.bytesSent, framesSent: s.framesSent };
  });
}

// stop ends the WHIP session (DELETE), the connection and the source; failed keeps the error on screen.
async function stop(reason = '', failed = false) {
  if (state.state === 'idle' || state.state === 'stopping') return;
  show('stopping');
  for (const t of state.timers) clearInterval(t);
  state.timers = [];
  const { pc, stream } = state;
  const session = state.location;
  state.pc = null;
  state.stream = null;
  state.location = '';
  state.last = null;
  if (session) {
    await fetch(session, { method: 'DELETE', headers: withAuth() }).catch(() => {});
  }
  if (pc) pc.close();
  if (stream) for (const t of stream.getTracks()) t.stop();
  $('preview').srcObject = null;
  show(failed ? 'failed' : 'idle', failed ? reason : '');
}

window.addEventListener('pagehide', () => {
  if (state.location) fetch(state.location, { method: 'DELETE', headers: withAuth(), keepalive: true });
});

$('publish-form').addEventListener('submit', start);
$('stop').addEventListener('click', () => stop());
if (token) $('home').href = `./?token=${encodeURIComponent(token)}`;
show('idle');
loadCameras().catch((err) => show('failed', String(err.message || err)));
