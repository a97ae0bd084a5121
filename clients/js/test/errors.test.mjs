// Refusals before the WebSocket upgrade, the HTTP endpoints, and the options.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { allMatches, createMatch, join, listMatches } from '../ricochet.js';
import { freePort, refused, serversForFile } from './servers.mjs';

let servers;
const member = serversForFile((started) => (servers = started));

describe('joining refused before the upgrade', () => {
  test('an unknown match ID is 404 unknown_match', async () => {
    await assert.rejects(member({ room: '0123456789abcdef0123456789abcdef' }), refused('unknown_match', 404));
  });

  test('a full match is 409 match_full', async () => {
    const { id } = await createMatch(servers.httpBase, { maxPlayers: 2 });
    await member({ room: id });
    await member({ room: id });
    await assert.rejects(member({ room: id }), refused('match_full', 409));
  });

  test('a bad room name, next and meta are 400', async () => {
    await assert.rejects(member({ room: 'no spaces' }), refused('bad_room', 400));
    await assert.rejects(member({ room: 'q', next: 99 }), refused('bad_next', 400));
    await assert.rejects(member({ room: 'q', meta: { pad: 'x'.repeat(600) } }), refused('meta_too_large', 400));
  });

  test('without the node:http diagnosis the refusal is generic', async () => {
    await assert.rejects(member({ room: '0123456789abcdef0123456789abcdef', diagnose: false }), refused('connection_refused'));
  });

  test('no server is connection_failed', async () => {
    const port = await freePort();
    await assert.rejects(join({ signalingUrl: `ws://127.0.0.1:${port}`, room: 'x' }), refused('connection_failed'));
  });

  test('a missing WebSocket implementation is a clear error', async () => {
    const saved = globalThis.WebSocket;
    globalThis.WebSocket = undefined;
    try {
      assert.throws(() => join({ signalingUrl: servers.signalingUrl, room: 'x' }), refused('no_websocket'));
    } finally {
      globalThis.WebSocket = saved;
    }
    // A constructor passed in the options is used instead of the global one.
    let made = 0;
    class Counting extends saved {
      constructor(...args) {
        super(...args);
        made++;
      }
    }
    globalThis.WebSocket = undefined;
    try {
      const m = await member({ room: `ctor-${process.pid}`, WebSocket: Counting });
      assert.ok(m.id);
      assert.ok(made >= 1);
    } finally {
      globalThis.WebSocket = saved;
    }
  });
});

describe('HTTP endpoints', () => {
  test('createMatch refuses bad options with the server code', async () => {
    await assert.rejects(createMatch(servers.httpBase, { maxPlayers: 1 }), refused('bad_request', 400));
    await assert.rejects(listMatches(servers.httpBase, { limit: 0 }), refused('bad_request', 400));
  });

  test('listMatches pages through public matches, open ones only on request', async () => {
    const mine = [];
    for (let i = 0; i < 5; i++) mine.push((await createMatch(servers.httpBase, { maxPlayers: 2, metadata: { i } })).id);
    const hidden = (await createMatch(servers.httpBase, { public: false })).id;
    const ids = [];
    for await (const m of allMatches(servers.httpBase, { limit: 2 })) ids.push(m.id);
    for (const id of mine) assert.ok(ids.includes(id), `${id} listed`);
    assert.ok(!ids.includes(hidden), 'private matches are not listed');
    const page = await listMatches(servers.httpBase, { limit: 2 });
    assert.equal(page.matches.length, 2);
    assert.equal(typeof page.next, 'string');
    const m = (await listMatches(servers.httpBase, { limit: 200 })).matches.find((x) => x.id === mine[0]);
    assert.deepEqual(m.metadata, { i: 0 });
    assert.equal(m.maxPlayers, 2);
    assert.equal(m.players, 0);
    // Fill one: it is no longer open.
    await member({ room: mine[1] });
    await member({ room: mine[1] });
    const openIds = [];
    for await (const x of allMatches(servers.httpBase, { open: true })) openIds.push(x.id);
    assert.ok(!openIds.includes(mine[1]));
    assert.ok(openIds.includes(mine[2]));
  });
});
