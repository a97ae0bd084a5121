// The page: reads ?match=NAME (and players, relay, autoplay, frames), starts the wasm game,
// and offers a form to join by name or to make a private match and copy its link. Once the
// match plays, the chat box beside the canvas sends a line to every player on Enter (the wasm
// side lists the lines, each after its sender's player number in the player's colour).
import init, { start } from './ricochet_browser.js';

const params = new URLSearchParams(location.search);
const status = document.getElementById('status');
const form = document.getElementById('join');

document.getElementById('match').value = params.get('match') || '';
document.getElementById('players').value = params.get('players') || '2';
document.getElementById('relay').checked = params.get('relay') === 'force';

function address(match) {
  const q = new URLSearchParams();
  q.set('match', match);
  q.set('players', document.getElementById('players').value);
  if (document.getElementById('relay').checked) q.set('relay', 'force');
  return `${location.origin}${location.pathname}?${q}`;
}

form.addEventListener('submit', (e) => {
  e.preventDefault();
  location.href = address(document.getElementById('match').value.trim());
});

// A private match: the signaling server creates it with an unguessable ID, never listed.
document.getElementById('private').addEventListener('click', async () => {
  try {
    const players = Number(document.getElementById('players').value);
    const response = await fetch('/matches', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ public: false, max_players: players }),
    });
    if (!response.ok) throw new Error(`the server answered ${response.status} ${await response.text()}`);
    const created = await response.json();
    const link = address(created.id);
    document.getElementById('link-text').value = link;
    document.getElementById('link').hidden = false;
    try {
      await navigator.clipboard.writeText(link);
    } catch {
      // Clipboard access needs a secure page; the link stays in the box to copy by hand.
      document.getElementById('link').firstChild.textContent = 'Copy this link: ';
    }
    history.pushState(null, '', link);
    run(new URL(link).search);
  } catch (err) {
    status.textContent = `Could not make a private match: ${err.message}`;
  }
});

let client = null;
function run(query) {
  if (client) {
    location.href = `${location.pathname}${query}`; // one match per page load
    return;
  }
  try {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    client = start(document.getElementById('game'), query, `${scheme}//${location.host}`);
    // For tests and tools: status() is a JSON string (see examples/browser/src/lib.rs).
    window.ricochet = {
      status: () => client.status(),
      checksum: (frame) => client.checksum(frame) ?? null,
      frame: () => client.frame(),
      forensics: () => client.forensics(),
      // Sends a chat line to every player; throws if it was not sent.
      chat: (text) => client.chat(text),
      // Leaves the match (the others see this player leave at once; a reload joins afresh).
      leave: () => client.leave(),
    };
    offerForensics();
    chatBox();
  } catch (err) {
    status.textContent = String(err.message || err);
  }
}

// The chat: Enter sends the line (an empty one goes back to the game), Escape goes back to the
// game; Enter on the game (nothing else focused) opens the chat. The game ignores keys typed into the box.
function chatBox() {
  const box = document.getElementById('chat');
  const input = document.getElementById('chat-input');
  const error = document.getElementById('chat-error');
  document.getElementById('chat-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text) {
      input.blur();
      return;
    }
    try {
      client.chat(text);
      input.value = '';
      error.hidden = true;
    } catch (err) {
      error.textContent = String(err.message || err);
      error.hidden = false;
    }
  });
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') input.blur();
  });
  window.addEventListener('keydown', (e) => {
    const onGame = e.target === document.body || e.target === document.getElementById('game');
    if (e.key === 'Enter' && onGame && !box.hidden) {
      e.preventDefault();
      input.focus();
    }
  });
}

// On a desync the session writes a forensics bundle (both states at the first differing
// frame); the page offers each one as a download for `ricochet-desync`.
function offerForensics() {
  const list = document.getElementById('forensics');
  let shown = 0;
  setInterval(() => {
    const bundles = client.forensics();
    for (; shown < bundles.length; shown++) {
      // The file is the session's text as is (its numbers are not JavaScript's to round).
      const text = bundles[shown];
      const b = JSON.parse(text);
      const name = `desync-${b.frame}-${b.local.peer}-vs-${b.remote.peer}.json`.replaceAll(' ', '');
      const url = URL.createObjectURL(new Blob([text], { type: 'application/json' }));
      const item = document.createElement('li');
      const link = document.createElement('a');
      link.href = url;
      link.download = name;
      link.textContent = `Desync with ${b.remote.peer} at frame ${b.frame}: download the forensics bundle`;
      item.append(link, ' (read it with ricochet-desync)');
      list.append(item);
      list.hidden = false;
    }
  }, 500);
}

await init();
window.ricochetLoaded = true;
if (params.get('match')) run(location.search);
