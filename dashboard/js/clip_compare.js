// dashboard/compare_widgets.py: clip_compare_html's videos in step
const videos = [...document.querySelectorAll('video')];
const play = document.getElementById('play'), seek = document.getElementById('seek'), at = document.getElementById('at');
const lead = videos[0];
function duration() { return Math.min(...videos.map(v => v.duration || 0)); }
function show() { const d = duration(); if (d > 0) { seek.value = 1000 * lead.currentTime / d; }
  at.textContent = lead.currentTime.toFixed(2) + ' / ' + duration().toFixed(2) + ' s'; }
function setAll(t) { videos.forEach(v => { v.currentTime = t; }); }
play.addEventListener('click', () => {
  if (lead.paused) { videos.forEach(v => v.play()); play.textContent = 'pause'; }
  else { videos.forEach(v => v.pause()); setAll(lead.currentTime); play.textContent = 'play'; } });
seek.addEventListener('input', () => { setAll(seek.value / 1000 * duration()); show(); });
lead.addEventListener('timeupdate', show);
lead.addEventListener('ended', () => { videos.forEach(v => v.pause()); play.textContent = 'play'; });
(function follow() {  // keep every video on the first one while they play
  if (!lead.paused && !lead.seeking) videos.slice(1).forEach(v => {  // never while a clip is still seeking
    if (!v.seeking && Math.abs(v.currentTime - lead.currentTime) > 0.05) v.currentTime = lead.currentTime; });
  requestAnimationFrame(follow); })();
Promise.all(videos.map(v => v.readyState >= 1 ? null : new Promise(ok => v.addEventListener('loadedmetadata', ok, {once: true}))))
  .then(() => { show(); document.body.dataset.ready = '1'; });
