// Overlay: the boxes the browser draws on a canvas over a tile's raw video, from the player's `meta`
// messages, in the same class colours the annotated track burns in.

// Class colours: the first ten of Sasha Trubetskoy's "20 distinct colours", as overlay/ burns them
// into the annotated track, so both tracks show a class in the same colour.
const PALETTE = [
  [230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48], [145, 30, 180],
  [70, 240, 240], [240, 50, 230], [210, 245, 60], [0, 128, 128], [255, 225, 25],
];
const ZONE_COLOR = [255, 225, 25];

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

export function clearOverlay(tile) {
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
export function drawOverlay(tile, player, md) {
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
