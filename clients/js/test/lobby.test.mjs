// The lobby (host, ready, start), passwords, labels and quick-match properties.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createMatch, join, listMatches } from '../ricochet.js';
import { refused, serversForFile, until, waitFor } from './servers.mjs';

let servers;
const member = serversForFile((started) => (servers = started));
let rooms = 0;
const room = () => `lobby-${process.pid}-${++rooms}`;

describe('passwords', () => {
  test('a locked match refuses a missing or wrong password and takes the right one', async () => {
    const created = await createMatch(servers.httpBase, { password: 's3cret p@ss/word', labels: { game: 'pw' } });
    assert.equal(created.locked, true);
    const listed = (await listMatches(servers.httpBase, { labels: { game: 'pw' } })).matches.find((m) => m.id === created.id);
    assert.equal(listed.locked, true);
    await assert.rejects(member({ room: created.id }), refused('wrong_password', 403));
    await assert.rejects(member({ room: created.id, password: 's3cret' }), refused('wrong_password', 403));
    const a = await member({ room: created.id, password: 's3cret p@ss/word' });
    assert.equal(a.matchId, created.id);
    assert.deepEqual(a.labels, { game: 'pw' });
  });
});

describe('lobby', () => {
  test('ready, start, errors for the wrong member or too few ready, late joiners refused', async () => {
    const name = room();
    const a = await member({ room: name });
    const b = await member({ room: name });
    assert.equal(a.host, a.id, 'the first member hosts');
    assert.equal(b.host, a.id);
    assert.deepEqual({ ...b.lobby, ready: undefined }, { host: a.id, minPlayers: 2, started: false, lateJoin: false, ready: undefined, roster: null });

    await assert.rejects(a.start(), refused('not_enough_ready'));
    const seen = [];
    b.on('ready', (e) => seen.push([e.peer, e.ready]));
    const aReady = waitFor(a, 'ready', (e) => e.peer === a.id);
    a.setReady(true);
    assert.equal((await aReady).ready, true, 'the sender hears its own peer_ready');
    b.setReady(true);
    b.setReady(false);
    b.setReady(true);
    await until(() => seen.length === 4, 'ready events');
    assert.deepEqual(seen, [[a.id, true], [b.id, true], [b.id, false], [b.id, true]]);
    assert.deepEqual(a.lobby.ready, [a.id, b.id]);
    assert.equal(a.members.get(b.id).ready, true);

    await assert.rejects(b.start(), refused('not_host'));
    const started = waitFor(b, 'started');
    const roster = await a.start();
    assert.deepEqual(roster, [a.id, b.id]);
    assert.deepEqual((await started).roster, [a.id, b.id]);
    assert.equal(b.lobby.started, true);
    assert.deepEqual(b.lobby.roster, [a.id, b.id]);

    await assert.rejects(a.start(), refused('already_started'));
    const err = waitFor(b, 'error');
    b.setReady(false);
    assert.equal((await err).code, 'already_started');
    await assert.rejects(member({ room: name }), refused('match_started', 409));
  });

  test('only the ready members are the roster; min_players and late_join', async () => {
    const created = await createMatch(servers.httpBase, { minPlayers: 3, lateJoin: true, maxPlayers: 5 });
    assert.equal(created.minPlayers, 3);
    assert.equal(created.lateJoin, true);
    assert.equal(typeof created.rejoinGraceSecs, 'number', 'the server\'s grace by default');
    assert.equal((await createMatch(servers.httpBase, { rejoinGraceSecs: 5 })).rejoinGraceSecs, 5);
    await assert.rejects(createMatch(servers.httpBase, { rejoinGraceSecs: 1e6 }), refused('bad_request', 400));
    const a = await member({ room: created.id });
    const b = await member({ room: created.id });
    const c = await member({ room: created.id });
    const d = await member({ room: created.id });
    assert.equal(d.lobby.minPlayers, 3);
    assert.equal(d.lobby.lateJoin, true);
    for (const m of [a, b, d]) m.setReady(true);
    await until(() => a.lobby.ready.length === 3, 'three ready');
    const cEvents = [];
    a.on('ready', (e) => e.peer === c.id && cEvents.push(e.ready));
    c.setReady(true);
    c.setReady(false);
    await until(() => cEvents.length === 2, 'c ready, then not');
    assert.deepEqual(cEvents, [true, false]);
    assert.equal(a.members.get(c.id).ready, false);
    assert.deepEqual(a.lobby.ready, [a.id, b.id, d.id]);
    const roster = await a.start();
    assert.deepEqual(roster, [a.id, b.id, d.id], 'the ready members in join order');
    const late = await member({ room: created.id });
    assert.equal(late.lobby.started, true);
    assert.deepEqual(late.lobby.roster, [a.id, b.id, d.id]);
  });

  test('not enough ready for min_players', async () => {
    const created = await createMatch(servers.httpBase, { minPlayers: 3 });
    const a = await member({ room: created.id });
    const b = await member({ room: created.id });
    a.setReady(true);
    b.setReady(true);
    await until(() => a.lobby.ready.length === 2, 'two ready');
    await assert.rejects(a.start(), refused('not_enough_ready'));
  });

  test('the host role passes to the next member in join order', async () => {
    const name = room();
    const a = await member({ room: name });
    const b = await member({ room: name });
    const c = await member({ room: name });
    assert.equal(c.host, a.id);
    const hostB = waitFor(b, 'host');
    const hostC = waitFor(c, 'host');
    const leftC = waitFor(c, 'peerleft');
    await a.leave();
    assert.equal((await leftC).peer, a.id);
    assert.equal((await hostB).peer, b.id);
    assert.equal((await hostC).peer, b.id);
    assert.equal(c.host, b.id);
    b.setReady(true);
    c.setReady(true);
    await until(() => b.lobby.ready.length === 2, 'two ready');
    assert.deepEqual(await b.start(), [b.id, c.id]);
  });
});

describe('labels and quick-match properties', () => {
  test('a quick match groups only joiners with exactly the same properties', async () => {
    const name = room();
    const v2a = await member({ room: name, next: 2, properties: { version: '2' } });
    const v3a = await member({ room: name, next: 2, properties: { version: '3' } });
    const v2b = await member({ room: name, next: 2, properties: { version: '2' } });
    const v3b = await member({ room: name, next: 2, properties: { version: '3' } });
    const v3x = await member({ room: name, next: 2, properties: { version: '3', mode: 'duel' } });
    assert.equal(v2a.matchId, v2b.matchId);
    assert.equal(v3a.matchId, v3b.matchId);
    assert.notEqual(v2a.matchId, v3a.matchId);
    assert.notEqual(v3x.matchId, v3a.matchId);
    assert.deepEqual(v2b.peers, [v2a.id]);
    assert.deepEqual(v3b.peers, [v3a.id]);
    assert.deepEqual(v3x.peers, []);
    assert.deepEqual(v3b.labels, { version: '3' }, 'the group carries its properties as labels');
    assert.equal(v3b.lobby, null, 'quick-match groups have no lobby');
    await assert.rejects(v3a.start(), refused('no_lobby'));
    await assert.rejects(member({ room: name, next: 2, properties: { 'Bad Key': '1' } }), refused('bad_request', 400));
    await assert.rejects(join({ signalingUrl: servers.signalingUrl, room: name, next: 2, properties: { meta: 'x' } }), refused('bad_request'));
  });

  test('listMatches filters on labels', async () => {
    const game = `dots-${process.pid}`;
    const v3 = await createMatch(servers.httpBase, { labels: { game, version: '3', mode: 'duel', text: 'casual, no rush' } });
    const v2 = await createMatch(servers.httpBase, { labels: { game, version: '2', mode: 'duel' } });
    const other = await createMatch(servers.httpBase, { labels: { game, version: '3', mode: 'ffa' } });
    assert.deepEqual(v3.labels, { game, version: '3', mode: 'duel', text: 'casual, no rush' });
    const ids = async (labels) => (await listMatches(servers.httpBase, { labels, limit: 200 })).matches.map((m) => m.id).sort();
    assert.deepEqual(await ids({ game }), [v3.id, v2.id, other.id].sort());
    assert.deepEqual(await ids({ game, version: '3' }), [v3.id, other.id].sort());
    assert.deepEqual(await ids({ game, version: '3', mode: 'duel' }), [v3.id]);
    assert.deepEqual(await ids({ game, mode: 'duel', version: '2' }), [v2.id]);
    assert.deepEqual(await ids({ game, text: 'casual, no rush' }), [v3.id]);
    assert.deepEqual(await ids({ game, version: '4' }), []);
    const listed = (await listMatches(servers.httpBase, { labels: { game, version: '2' } })).matches[0];
    assert.deepEqual(listed.labels, { game, version: '2', mode: 'duel' });
    assert.equal(listed.locked, false);
    assert.equal(listed.started, false);
    assert.equal(listed.minPlayers, 2);
    await assert.rejects(listMatches(servers.httpBase, { labels: { 'Not A Key': 'x' } }), refused('bad_request', 400));
    await assert.rejects(createMatch(servers.httpBase, { labels: { 'Bad Key': 'x' } }), refused('bad_request', 400));
    await assert.rejects(listMatches(servers.httpBase, { labels: { limit: '3' } }), refused('bad_request'));
  });
});
