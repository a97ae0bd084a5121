// Presence and relayed messages between JavaScript clients, against the real servers.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createMatch, MAX_IN_FLIGHT, MAX_QUEUED, RicochetError } from '../ricochet.js';
import { rawMember, relayReady, serversForFile, sleep, until, waitFor } from './servers.mjs';

let servers;
const member = serversForFile((started) => (servers = started));

let rooms = 0;
const room = () => `js-${process.pid}-${++rooms}`;
// Every message `m` receives, as {from, op, text}.
function inbox(m) {
  const got = [];
  m.on('message', (e) => got.push({ from: e.from, op: e.op, text: e.text() }));
  return got;
}
const texts = (got, from, op) => got.filter((g) => g.from === from && (op === undefined || g.op === op)).map((g) => g.text);
const range = (n, prefix = '') => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

describe('presence', () => {
  test('joins by name and follows joins, metadata changes and leaves', async () => {
    const name = room();
    const a = await member({ room: name, meta: { name: 'ann' } });
    assert.match(a.id, /^[0-9a-f-]{36}$/);
    assert.match(a.matchId, /^[0-9a-f]{32}$/);
    assert.equal(a.name, name);
    assert.deepEqual([...a.members.keys()], [a.id]);
    assert.deepEqual(a.members.get(a.id).meta, { name: 'ann' });

    const joined = waitFor(a, 'peerjoined');
    const b = await member({ room: name, meta: { name: 'bob' } });
    assert.equal(b.matchId, a.matchId);
    assert.deepEqual([...b.members.keys()], [a.id, b.id], 'welcome lists the members in join order, the receiver last');
    assert.deepEqual(b.members.get(a.id).meta, { name: 'ann' });
    const j = await joined;
    assert.equal(j.peer, b.id);
    assert.deepEqual(j.meta, { name: 'bob' });
    assert.deepEqual(a.peers, [b.id]);

    const changed = waitFor(a, 'peermeta');
    b.setMeta({ name: 'bob', color: 'blue' });
    const c = await changed;
    assert.equal(c.peer, b.id);
    assert.deepEqual(a.members.get(b.id).meta, { name: 'bob', color: 'blue' });
    assert.deepEqual(b.members.get(b.id).meta, { name: 'bob', color: 'blue' }, 'own metadata updated locally');

    const left = waitFor(a, 'peerleft');
    const closed = waitFor(b, 'close');
    await b.leave();
    assert.equal((await closed).code, 1000);
    assert.equal((await left).peer, b.id);
    assert.deepEqual([...a.members.keys()], [a.id]);
    assert.throws(() => b.send(1, 'x'), (e) => e instanceof RicochetError && e.code === 'closed');
  });

  test('joins a created match by its ID', async () => {
    const created = await createMatch(servers.httpBase, { maxPlayers: 3, metadata: { mode: 'duel' } });
    assert.match(created.id, /^[0-9a-f]{32}$/);
    assert.equal(created.maxPlayers, 3);
    const a = await member({ room: created.id });
    const b = await member({ room: created.id.toUpperCase() });
    assert.equal(a.matchId, created.id);
    assert.equal(b.matchId, created.id);
    assert.equal(a.name, null, 'a match joined by ID has no name');
    assert.equal(a.maxPlayers, 3);
    assert.deepEqual(b.peers, [a.id]);
    await relayReady(a, [b.id]);
    await relayReady(b, [a.id]);
    const got = inbox(b);
    a.send(3, 'by id');
    await until(() => got.length === 1, 'the message');
    assert.deepEqual(got, [{ from: a.id, op: 3, text: 'by id' }]);
  });
});

describe('messages', () => {
  test('to everyone and to one member, both ways, in order and exactly once', async () => {
    const name = room();
    const a = await member({ room: name });
    const b = await member({ room: name });
    const c = await member({ room: name });
    for (const m of [a, b, c]) await relayReady(m);
    const [ga, gb, gc] = [inbox(a), inbox(b), inbox(c)];
    const n = 300;
    for (let i = 0; i < n; i++) {
      a.send(1, `a${i}`); // everyone
      b.send(2, `b${i}`, a.id); // one member
      c.send(3, new TextEncoder().encode(`c${i}`), [a.id, b.id]); // a list of members
      if (i % 50 === 0) await sleep(1);
    }
    b.send(4, 'only to c', [c.id]);
    await until(() => ga.length === 2 * n && gb.length === 2 * n && gc.length === n + 1, 'every message', 20000);
    await sleep(300); // anything extra (a duplicate) would show up now
    assert.deepEqual(texts(gb, a.id, 1), range(n, 'a'));
    assert.deepEqual(texts(gc, a.id, 1), range(n, 'a'));
    assert.deepEqual(texts(ga, b.id, 2), range(n, 'b'));
    assert.deepEqual(texts(ga, c.id, 3), range(n, 'c'));
    assert.deepEqual(texts(gb, c.id, 3), range(n, 'c'));
    assert.deepEqual(texts(gc, b.id), ['only to c']);
    assert.equal(ga.length, 2 * n);
    assert.equal(gb.length, 2 * n);
    assert.equal(gc.length, n + 1, 'c got nothing meant for a alone');
    const data = await new Promise((resolve) => {
      c.on('message', (e) => resolve(e));
      a.send(255, Uint8Array.from([0, 1, 2, 255]), c.id);
    });
    assert.equal(data.op, 255);
    assert.deepEqual([...data.data], [0, 1, 2, 255]);
    await until(() => a.pending() === 0 && b.pending() === 0 && c.pending() === 0, 'every message acknowledged');
  });

  test('a relay restart mid-stream loses, repeats and reorders nothing', async () => {
    const name = room();
    const a = await member({ room: name });
    const b = await member({ room: name });
    await relayReady(a, [b.id]);
    await relayReady(b, [a.id]);
    const [ga, gb] = [inbox(a), inbox(b)];
    const n = 3000;
    let restarted = null;
    let sent = 0;
    const reconnected = [waitFor(a, 'relay', (e) => e.state === 'reconnecting', 20000), waitFor(b, 'relay', (e) => e.state === 'reconnecting', 20000)];
    while (sent < n) {
      // Keep the queues full but within bounds; restart the relay a third of the way in.
      if (a.pending() < 500 && b.pending() < 500) {
        a.send(9, `a${sent}`);
        b.send(9, `b${sent}`);
        sent++;
      } else await sleep(2);
      if (!restarted && gb.length > n / 3) restarted = servers.restartRelay(300);
    }
    await restarted;
    await Promise.all(reconnected);
    await until(() => ga.length >= n && gb.length >= n, `every message (a got ${ga.length}, b got ${gb.length})`, 30000);
    await sleep(300);
    assert.ok(a.relayConnected && b.relayConnected);
    assert.deepEqual(texts(gb, a.id), range(n, 'a'));
    assert.deepEqual(texts(ga, b.id), range(n, 'b'));
    assert.ok(a.stats.relayReconnects >= 1 && b.stats.relayReconnects >= 1);
  });

  test('a hostile peer sending garbage breaks nothing', async () => {
    const name = room();
    const a = await member({ room: name });
    const b = await member({ room: name });
    const evil = await rawMember(servers.signalingUrl, name);
    await relayReady(a, [b.id, evil.id]);
    await relayReady(b, [a.id]);
    await until(() => evil.numOf(a.id) !== undefined, 'evil sees a');
    const ga = inbox(a);
    const t = evil.numOf(a.id);
    const to = (op, ...payload) => evil.sendFrame([op, 0x01, t >> 8, t & 0xff, ...payload]);
    const message = (stream, seq, op, data, len = data.length) => [0, 0, 0, 0, 0, 5, ...stream, ...seq, op, len, ...data];
    to(0x01); // empty packet
    to(0x01, 1, 2); // shorter than a path header
    to(0x01, 0, 0, 0, 0, 0); // control without a tag
    to(0x01, 0, 0, 0, 0, 0, 99, 1, 2, 3); // unknown tag
    to(0x01, 0, 1, 0, 0xbe, 0xef, 2, 0, 0); // a ggrs-looking message
    to(0x01, 0, 0, 0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f); // varint beyond u32
    to(0x01, 0, 0, 0, 0, 0, 5, 0x80, 0x80); // truncated varint
    to(0x01, ...message([0], [0], 1, [1, 2])); // stream 0 is not a stream
    to(0x01, ...message([7], [0], 1, [1, 2], 9)); // length beyond the packet
    to(0x01, ...message([7], [0], 1, [1, 2], 1)); // bytes after the data
    to(0x01, 0, 0, 0, 0, 0, 5, 7, 0, 1, 0x81, 0x10, ...new Array(2049).fill(0)); // 2049 bytes: too long
    to(0x02, 0, 50, 1, 2, 3); // batch whose length runs past the frame
    to(0x02, 0, 0, 0, 1, 7); // empty and tiny packets in a batch
    to(0x01, 0, 0, 0, 0, 0, 6, 7, 0xff, 0xff, 0xff, 0xff, 0x0f); // ack of a stream a never used
    to(0x07, 1, 2, 3); // another game opcode
    // Stream 7 starts (seq 0 is delivered), then seqs 2..=601 arrive while 1 never does: at
    // most 256 are held, the rest dropped. 50 packets per 0x02 frame.
    to(0x01, ...message([7], [0], 1, [0x78]));
    for (let first = 2; first < 602; first += 50) {
      const batch = [];
      for (let seq = first; seq < first + 50; seq++) {
        const p = message([7], seq < 128 ? [seq] : [0x80 | (seq & 0x7f), seq >> 7], 1, [seq & 0xff]);
        batch.push(0, p.length, ...p);
      }
      to(0x02, ...batch);
    }
    evil.sendFrame([0x01, 0x00, 1, 2, 3]); // broadcast garbage
    const rnd = new Uint8Array(300);
    for (let i = 0; i < 150; i++) {
      crypto.getRandomValues(rnd);
      to(0x01, ...rnd.subarray(0, 1 + (i % 300)));
      to(0x02, ...rnd.subarray(0, 1 + (i % 300)));
    }
    // The honest peer's messages still arrive, in order, and nothing the hostile one sent does.
    await relayReady(b, [a.id]);
    for (let i = 0; i < 100; i++) b.send(4, `b${i}`);
    await until(() => texts(ga, b.id).length === 100, 'the honest messages', 15000);
    assert.deepEqual(texts(ga, b.id), range(100, 'b'));
    assert.deepEqual(texts(ga, evil.id), ['x'], 'no garbage delivered');
    assert.ok(a.stats.dropped > 10, `garbage counted as dropped (${a.stats.dropped})`);
    const held = a._in.get(evil.id).held.size;
    assert.ok(held > 0 && held < 256, `at most 256 out-of-order messages held per sender (${held})`);
    // A hostile peer that speaks the protocol is delivered in order like anyone else.
    to(0x01, ...message([9], [1], 6, [0x62])); // seq 1 of a new stream: dropped (not seq 0)
    to(0x01, ...message([9], [0], 6, [0x61]));
    to(0x01, ...message([9], [1], 6, [0x62]));
    to(0x01, ...message([9], [1], 6, [0x62])); // duplicate
    await until(() => ga.some((g) => g.from === evil.id && g.text === 'b'), 'evil message');
    await sleep(100);
    to(0x01, ...message([7], [0], 6, [0x7a])); // seq 0 of the stream 9 replaced: not adopted again
    to(0x01, ...message([9], [2], 6, [0x63]));
    await until(() => ga.some((g) => g.from === evil.id && g.text === 'c'), 'evil message c');
    assert.deepEqual(texts(ga, evil.id), ['x', 'a', 'b', 'c']);
    assert.equal(a._in.get(evil.id).held.size, 0, 'a new stream drops what the old one held');
    // Acks beyond what was sent are ignored: a's messages to evil stay unacknowledged.
    for (let i = 0; i < 3; i++) a.send(1, `to evil ${i}`, evil.id);
    const stream = a._out.get(evil.id).stream;
    const varint = (v) => {
      const out = [];
      while (v >= 0x80) {
        out.push((v & 0x7f) | 0x80);
        v = Math.floor(v / 128);
      }
      return [...out, v];
    };
    to(0x01, 0, 0, 0, 0, 0, 6, ...varint(stream), 4); // next 4: beyond seq 2 + 1
    to(0x01, 0, 0, 0, 0, 0, 6, ...varint(stream ^ 1), 3); // another stream
    await sleep(100);
    assert.equal(a.pending(evil.id), 3);
    to(0x01, 0, 0, 0, 0, 0, 6, ...varint(stream), 2);
    await until(() => a.pending(evil.id) === 1, 'an honest ack counts');
    evil.close();
  });

  test('the bytes on the wire are those of the protocol', async () => {
    const name = room();
    const a = await member({ room: name });
    const raw = await rawMember(servers.signalingUrl, name);
    await relayReady(a, [raw.id]);
    const frames = [];
    raw.relay.onmessage = (ev) => frames.push(new Uint8Array(ev.data));
    const ga = inbox(a);
    // The example of the spec: first message of stream 0x01020304, op 7, data "hi".
    const t = raw.numOf(a.id);
    raw.sendFrame([0x01, 0x01, t >> 8, t & 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x84, 0x86, 0x88, 0x08, 0x00, 0x07, 0x02, 0x68, 0x69]);
    await until(() => ga.length === 1, 'the example message');
    assert.deepEqual(ga, [{ from: raw.id, op: 7, text: 'hi' }]);
    // a acknowledges it: MessageAck{stream 0x01020304, next 1} in a targeted frame to raw.
    await until(() => frames.some((f) => f[0] === 0x01 && f[9] === 0x06), 'the ack');
    const ack = frames.find((f) => f[0] === 0x01 && f[9] === 0x06);
    assert.deepEqual([...ack.subarray(0, 2)], [0x01, 0x01], 'opcode 1, TARGETED');
    assert.equal((ack[2] << 8) | ack[3], raw.numOf(a.id), 'sender field: a');
    assert.deepEqual([...ack.subarray(4)], [0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x84, 0x86, 0x88, 0x08, 0x01], 'path seq 0, flags 0, control, tag 6, stream, next 1');
    // a's own first two messages to raw: path sequence 1 and 2 (after the ack), one stream, seq 0 and 1.
    frames.length = 0;
    a.send(9, 'hi', raw.id);
    a.send(9, '');
    await until(() => frames.length >= 1, 'a message frame');
    await sleep(50);
    const packets = [];
    for (const f of frames) {
      if (f[0] === 0x01) packets.push(f.subarray(4));
      else if (f[0] === 0x02) for (let at = 4; at < f.length; at += 2 + ((f[at] << 8) | f[at + 1])) packets.push(f.subarray(at + 2, at + 2 + ((f[at] << 8) | f[at + 1])));
    }
    assert.equal(packets.length, 2);
    const stream = [...packets[0].subarray(6, 6 + packets[0].subarray(6).findIndex((b) => b < 0x80) + 1)];
    assert.ok(stream.some((b) => b !== 0 && b !== 0x80), 'a non-zero stream');
    assert.deepEqual([...packets[0]], [0x00, 0x01, 0x00, 0x00, 0x00, 0x05, ...stream, 0x00, 0x09, 0x02, 0x68, 0x69]);
    assert.deepEqual([...packets[1]], [0x00, 0x02, 0x00, 0x00, 0x00, 0x05, ...stream, 0x01, 0x09, 0x00]);
    raw.close();
  });

  test('refused sends: bad op, too large, unknown peer, full queue', async () => {
    const name = room();
    const a = await member({ room: name });
    const b = await member({ room: name });
    // A member that never comes to the relay: nothing sent to it is ever acknowledged.
    const silent = await rawMember(servers.signalingUrl, name, { relay: false });
    await until(() => a.members.has(silent.id), 'the silent member');
    const code = (c) => (e) => e instanceof RicochetError && e.code === c;
    assert.throws(() => a.send(256, 'x'), code('bad_op'));
    assert.throws(() => a.send(-1, 'x'), code('bad_op'));
    assert.throws(() => a.send(1, new Uint8Array(2049)), code('message_too_large'));
    assert.equal(a.send(1, new Uint8Array(2048), b.id), 1);
    assert.throws(() => a.send(1, 'x', 'no-such-peer'), code('unknown_peer'));
    assert.throws(() => a.send(1, 'x', a.id), code('unknown_peer'));
    for (let i = 0; i < MAX_IN_FLIGHT + MAX_QUEUED; i++) a.send(1, `${i}`, silent.id);
    assert.throws(() => a.send(1, 'one too many', silent.id), code('queue_full'));
    // Refused for everyone: nothing is queued for b either when one target is full.
    const before = a.pending(b.id);
    assert.throws(() => a.send(1, 'all'), code('queue_full'));
    assert.equal(a.pending(b.id), before);
    silent.close();
    await until(() => !a.members.has(silent.id), 'the silent member leaves');
    assert.equal(a.pending(silent.id), 0, 'what was queued for a member that left is dropped');
    assert.equal(a.send(1, 'all'), 1);
  });
});
