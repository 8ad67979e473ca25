// dashboard/compare_widgets.py: frame_compare_html's panels, zoom and pan, wipe and error maps.
// One view for every canvas: `zoom` (1 = the image fits the canvas' width) and the image pixel
// (x, y) at the canvas' top left; each canvas scales it by its own width, so a larger wipe canvas
// shows the same region as the panels.
const panels = JSON.parse(document.getElementById('panels').textContent);
const view = {zoom: 1, x: 0, y: 0};
const images = {};
let errors = false;
const loads = panels.map(p => Promise.all([p.src, p.err].filter(Boolean).map(src => new Promise(ok => {
  const im = new Image(); im.onload = im.onerror = () => ok(); im.src = src; images[src] = im;
}))));
const canvases = [...document.querySelectorAll('canvas.panel')];
const wipe = document.getElementById('wipe');
const wipeA = document.getElementById('wipeA'), wipeB = document.getElementById('wipeB');
const wipeAt = document.getElementById('wipeAt');
const imageWidth = () => images[panels[0].src].naturalWidth;
const scaleOf = c => c.width / imageWidth() * view.zoom;  // canvas px per image px
function source(p) { return errors && p.err ? images[p.err] : images[p.src]; }
function draw(c, im, clipFrom, clipTo) {
  const g = c.getContext('2d');
  const s = scaleOf(c);
  g.imageSmoothingEnabled = false;  // zoomed pixels stay square
  g.save();
  g.beginPath(); g.rect(clipFrom * c.width, 0, (clipTo - clipFrom) * c.width, c.height); g.clip();
  g.setTransform(s, 0, 0, s, -view.x * s, -view.y * s);
  g.drawImage(im, 0, 0);
  g.restore();
}
function redraw() {
  for (const c of canvases) {
    c.getContext('2d').clearRect(0, 0, c.width, c.height);
    draw(c, source(panels[+c.dataset.i]), 0, 1);
  }
  if (wipe) {
    const at = wipeAt.value / 100;
    const g = wipe.getContext('2d');
    g.clearRect(0, 0, wipe.width, wipe.height);
    draw(wipe, source(panels[+wipeA.value]), 0, at);
    draw(wipe, source(panels[+wipeB.value]), at, 1);
    g.fillStyle = '#fff'; g.fillRect(Math.round(at * wipe.width) - 1, 0, 1, wipe.height);
  }
  document.getElementById('zoom').textContent = view.zoom.toFixed(1) + 'x';
}
function canvasPoint(c, e) {
  const r = c.getBoundingClientRect();
  return [(e.clientX - r.left) * c.width / r.width, (e.clientY - r.top) * c.height / r.height];
}
function attach(c) {
  c.addEventListener('wheel', e => {
    e.preventDefault();
    const [px, py] = canvasPoint(c, e);
    const ix = view.x + px / scaleOf(c), iy = view.y + py / scaleOf(c);  // the image pixel under the cursor
    view.zoom = Math.min(64, Math.max(1, view.zoom * Math.exp(-Math.max(-100, Math.min(100, e.deltaY)) / 450)));
    view.x = ix - px / scaleOf(c); view.y = iy - py / scaleOf(c);
    if (view.zoom === 1) { view.x = 0; view.y = 0; }  // all the way out: the whole frame again
    redraw();
  }, {passive: false});
  let last = null;
  c.addEventListener('mousedown', e => { last = canvasPoint(c, e); e.preventDefault(); });
  window.addEventListener('mouseup', () => { last = null; });
  window.addEventListener('mousemove', e => {
    if (last && e.buttons === 0) last = null;  // released outside the frame
    if (!last) return;
    const now = canvasPoint(c, e);
    view.x -= (now[0] - last[0]) / scaleOf(c); view.y -= (now[1] - last[1]) / scaleOf(c);
    last = now;
    redraw();
  });
  c.addEventListener('dblclick', () => { view.zoom = 1; view.x = 0; view.y = 0; redraw(); });
}
Promise.all(loads).then(() => {
  canvases.forEach(attach);
  if (wipe) attach(wipe);
  [wipeA, wipeB, wipeAt].forEach(el => el && el.addEventListener('input', redraw));
  const toggle = document.getElementById('errors');
  if (toggle) toggle.addEventListener('change', () => { errors = toggle.checked; redraw(); });
  redraw();
  document.body.dataset.ready = '1';
});
