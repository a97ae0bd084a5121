// Connections that break: a rejoin after a dropped signaling connection, a half-open relay
// connection (the relay still holds the seat: 4005, renew_ticket, take it back), and relay
// memberships kept alive by RENEW with short-lived tickets.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { join } from '../ricochet.js';
import { freePort, relayReady, sleep, startServers, tcpProxy, until, waitFor } from './servers.mjs';

const cleanup = [];
after(async () => {
  for (const f of cleanup.reverse()) await f();
});
const range = (n, prefix = '') => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
function inbox(m, from) {
  const got = [];
  m.on('message', (e) => e.from === from() && got.push(e.text()));
  return got;
}

describe('reconnecting', () => {
  test('a rejoinable member takes its place back after its signaling connection drops', async () => {
    const servers = await startServers();
    const proxy = await tcpProxy(servers.sigPort);
    cleanup.push(() => servers.stop(), () => proxy.close());
    // a makes the room, with a rejoin grace of its own.
    const a = await join({ signalingUrl: `ws://127.0.0.1:${proxy.port}`, room: 'rejoin', rejoinable: true, rejoinGraceSecs: 20, meta: { name: 'ann' } });
    const b = await join({ signalingUrl: servers.signalingUrl, room: 'rejoin' });
    assert.equal(a.rejoinGraceSecs, 20);
    assert.equal(b.rejoinGraceSecs, null, 'not rejoinable');
    cleanup.push(() => a.leave(), () => b.leave());
    await relayReady(a, [b.id]);
    await relayReady(b, [a.id]);
    const bLeaves = [];
    b.on('peerleft', (e) => bLeaves.push(e.peer));
    const gotB = inbox(b, () => a.id);
    const id = a.id;

    proxy.block(true);
    const away = waitFor(a, 'signaling', (e) => e.state === 'reconnecting');
    proxy.drop();
    await away;
    // While a is away: c joins and b changes its metadata; a's relay path carries on.
    const c = await join({ signalingUrl: servers.signalingUrl, room: 'rejoin' });
    cleanup.push(() => c.leave());
    b.setMeta({ name: 'bob' });
    for (let i = 0; i < 50; i++) a.send(1, `a${i}`, b.id);
    await until(() => gotB.length === 50, 'messages while signaling is away');
    const joined = waitFor(a, 'peerjoined');
    const meta = waitFor(a, 'peermeta');
    const back = waitFor(a, 'signaling', (e) => e.state === 'connected');
    proxy.block(false);
    await back;
    assert.equal(a.id, id, 'the same peer ID');
    assert.equal((await joined).peer, c.id, 'missed joins are reported from the new welcome');
    assert.deepEqual((await meta).meta, { name: 'bob' });
    assert.deepEqual(a.peers, [b.id, c.id]);
    assert.deepEqual(bLeaves, [], 'the others saw no leave');
    assert.deepEqual(b.members.get(a.id).meta, { name: 'ann' });
    // The new signaling connection carries tickets and lobby requests again.
    const ready = waitFor(b, 'ready');
    a.setReady(true);
    assert.equal((await ready).peer, a.id);
    assert.deepEqual(gotB, range(50, 'a'));
  });

  test('a half-open relay connection: seat taken (4005), fresh ticket, seat taken back, nothing lost', async () => {
    const relayPort = await freePort();
    const proxy = await tcpProxy(relayPort);
    const servers = await startServers({ relayPort, relayUrl: `ws://127.0.0.1:${proxy.port}/` });
    cleanup.push(() => servers.stop(), () => proxy.close());
    const a = await join({ signalingUrl: servers.signalingUrl, room: 'half-open' });
    const b = await join({ signalingUrl: servers.signalingUrl, room: 'half-open' });
    cleanup.push(() => a.leave(), () => b.leave());
    await relayReady(a, [b.id]);
    await relayReady(b, [a.id]);
    const gotA = inbox(a, () => b.id);
    const gotB = inbox(b, () => a.id);
    const closes = [];
    a.on('relay', (e) => closes.push(e.code));
    for (let i = 0; i < 200; i++) {
      a.send(2, `a${i}`);
      b.send(2, `b${i}`);
    }
    await until(() => gotB.length > 20, 'some messages');
    proxy.halfOpen();
    for (let i = 200; i < 400; i++) {
      a.send(2, `a${i}`);
      b.send(2, `b${i}`);
    }
    await until(() => gotA.length === 400 && gotB.length === 400, `every message (${gotA.length}, ${gotB.length})`, 20000);
    await sleep(200);
    assert.deepEqual(gotB, range(400, 'a'));
    assert.deepEqual(gotA, range(400, 'b'));
    assert.ok(a.relayConnected && b.relayConnected);
    assert.ok(closes.includes(1006), `a saw its connection drop (${closes})`);
    assert.ok(closes.includes(4005), `a's first attempt found its seat taken (${closes})`);
  });

  test('RENEW keeps relay memberships past their first ticket', async () => {
    const servers = await startServers({ signalingArgs: ['--ticket-ttl-secs', '2'] });
    cleanup.push(() => servers.stop());
    const a = await join({ signalingUrl: servers.signalingUrl, room: 'renew' });
    const b = await join({ signalingUrl: servers.signalingUrl, room: 'renew' });
    cleanup.push(() => a.leave(), () => b.leave());
    await relayReady(a, [b.id]);
    await relayReady(b, [a.id]);
    const drops = [];
    for (const m of [a, b]) m.on('relay', (e) => e.state !== 'connected' && drops.push(e.code));
    const gotB = inbox(b, () => a.id);
    for (let i = 0; i < 12; i++) {
      a.send(3, `a${i}`);
      await sleep(500);
    }
    await until(() => gotB.length === 12, 'the messages');
    assert.deepEqual(drops, [], 'no relay connection ended (tickets were renewed)');
    assert.deepEqual(gotB, range(12, 'a'));
  });
});
