// Chat plus moving dots over the Ricochet relay. Everyone in the same room sees every dot;
// positions travel as op 1 (4 bytes: x and y, u16 big-endian), chat lines as op 2 (UTF-8).
//   index.html?room=NAME&signaling=ws://HOST:PORT&name=ann
// Without `signaling`, the server that served the page is used (ricochet-signaling --static).
import { join } from '../ricochet.js';

const OP_POSITION = 1;
const OP_CHAT = 2;
const STEP = 10;

const params = new URLSearchParams(location.search);
const room = params.get('room') || 'dots';
const signalingUrl = params.get('signaling') || `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`;
const myName = params.get('name') || `player-${Math.floor(Math.random() * 1000)}`;

const canvas = document.getElementById('field');
const ctx = canvas.getContext('2d');
const statusEl = document.getElementById('status');
const playersEl = document.getElementById('players');
const logEl = document.getElementById('log');
const chatInput = document.getElementById('chat');

/** peer ID -> {x, y} */
const dots = new Map();
let match = null;

function setStatus(state, text) {
  statusEl.dataset.state = state;
  statusEl.textContent = text;
}

function nameOf(peer) {
  const member = match && match.members.get(peer);
  return (member && member.meta && member.meta.name) || peer.slice(0, 8);
}

function colorOf(peer) {
  let h = 0;
  for (const c of peer) h = (h * 31 + c.charCodeAt(0)) % 360;
  return `hsl(${h} 70% 45%)`;
}

function log(line) {
  const li = document.createElement('li');
  li.textContent = line;
  logEl.append(li);
  logEl.scrollTop = logEl.scrollHeight;
}

function render() {
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  playersEl.replaceChildren();
  for (const [peer, { x, y }] of dots) {
    ctx.fillStyle = colorOf(peer);
    ctx.beginPath();
    ctx.arc(x, y, peer === match.id ? 10 : 8, 0, Math.PI * 2);
    ctx.fill();
    ctx.fillText(nameOf(peer), x + 12, y + 4);
    const li = document.createElement('li');
    li.textContent = `${nameOf(peer)}${peer === match.id ? ' (you)' : ''}: ${x},${y}`;
    li.dataset.peer = peer;
    playersEl.append(li);
  }
}

function encodePosition({ x, y }) {
  return Uint8Array.from([x >> 8, x & 0xff, y >> 8, y & 0xff]);
}

function moveTo(x, y, to) {
  const p = { x: Math.max(0, Math.min(canvas.width, Math.round(x))), y: Math.max(0, Math.min(canvas.height, Math.round(y))) };
  dots.set(match.id, p);
  match.send(OP_POSITION, encodePosition(p), to);
  render();
}

function showStatus() {
  const n = match.members.size;
  setStatus(match.relayConnected ? 'connected' : 'relay-down', `${myName} in ${room}: ${n} member${n === 1 ? '' : 's'}, relay ${match.relayConnected ? 'connected' : 'reconnecting'}`);
}

async function main() {
  setStatus('connecting', `joining ${room}…`);
  try {
    match = await join({ signalingUrl, room, meta: { name: myName } });
  } catch (e) {
    setStatus('failed', `could not join: ${e.code || ''} ${e.message}`);
    return;
  }
  window.demo.match = match;
  dots.set(match.id, { x: 40 + Math.floor(Math.random() * 320), y: 40 + Math.floor(Math.random() * 220) });
  match.on('peerjoined', (e) => {
    log(`* ${nameOf(e.peer)} joined`);
    match.send(OP_POSITION, encodePosition(dots.get(match.id)), e.peer); // tell the newcomer where we are
    showStatus();
  });
  match.on('peerleft', (e) => {
    log(`* ${e.peer.slice(0, 8)} left`);
    dots.delete(e.peer);
    render();
    showStatus();
  });
  match.on('peermeta', render);
  match.on('relay', showStatus);
  match.on('error', (e) => log(`! ${e.code}: ${e.message}`));
  match.on('close', (e) => setStatus('closed', `left the match (${e.code} ${e.reason})`));
  match.on('message', (e) => {
    if (e.op === OP_POSITION && e.data.length === 4) {
      dots.set(e.from, { x: (e.data[0] << 8) | e.data[1], y: (e.data[2] << 8) | e.data[3] });
      render();
    } else if (e.op === OP_CHAT) {
      log(`${nameOf(e.from)}: ${e.text()}`);
    }
  });
  // Everyone already here learns where we are (queued until the relay connects).
  match.send(OP_POSITION, encodePosition(dots.get(match.id)));
  showStatus();
  render();

  canvas.addEventListener('keydown', (e) => {
    const d = { ArrowLeft: [-STEP, 0], ArrowRight: [STEP, 0], ArrowUp: [0, -STEP], ArrowDown: [0, STEP] }[e.key];
    if (!d) return;
    e.preventDefault();
    const p = dots.get(match.id);
    moveTo(p.x + d[0], p.y + d[1]);
  });
  canvas.addEventListener('click', (e) => {
    const r = canvas.getBoundingClientRect();
    canvas.focus();
    moveTo(e.clientX - r.left, e.clientY - r.top);
  });
  document.getElementById('chat-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const text = chatInput.value.trim();
    if (!text) return;
    chatInput.value = '';
    try {
      match.send(OP_CHAT, text);
      log(`${myName} (you): ${text}`);
    } catch (err) {
      log(`! ${err.code}: ${err.message}`);
    }
  });
  window.addEventListener('pagehide', () => match.leave());
}

window.demo = { dots, match: null };
main();
