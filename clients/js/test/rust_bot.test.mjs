// A 2-player match between this JavaScript client (in Node) and a Rust client
// (`ricochet-bot --messages N`, relay only): 1,000 messages each way, op 7, in order, once.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join as pathJoin } from 'node:path';
import { after, before, test } from 'node:test';
import { join } from '../ricochet.js';
import { BIN_DIR, relayReady, startServers, until } from './servers.mjs';

// Under RICOCHET_JS_REQUIRE_ALL=1 (scripts/test, CI) a missing piece fails the test instead of
// skipping it, so CI never passes without running it.
function skipOrFail(t, why) {
  if (process.env.RICOCHET_JS_REQUIRE_ALL === '1') throw new Error(`required but unavailable: ${why}`);
  return t.skip(why);
}

const N = 1000;
const BOT = pathJoin(BIN_DIR, 'ricochet-bot');

function botHasMessages() {
  if (!existsSync(BOT)) return false;
  try {
    return execFileSync(BOT, ['--help'], { encoding: 'utf8' }).includes('--messages');
  } catch {
    return false;
  }
}

let servers;
before(async () => {
  if (botHasMessages()) servers = await startServers();
});
after(async () => {
  if (servers) await servers.stop();
});

test('1,000 messages each way between the JavaScript client and a Rust client', async (t) => {
  if (!servers) return skipOrFail(t, 'target/debug/ricochet-bot has no --messages (cargo build -p ricochet-bot)');
  const room = `js-rust-${process.pid}`;
  const bot = spawn(BOT, ['--signaling', servers.signalingUrl, '--room', room, '--players', '2', '--force-relay', '--timeout-secs', '60', '--messages', String(N)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  bot.stdout.on('data', (d) => (stdout += d));
  bot.stderr.on('data', (d) => (stderr = (stderr + d).slice(-8000)));
  const exited = new Promise((r) => bot.on('exit', (code, signal) => r({ code, signal })));
  let js;
  try {
    js = await join({ signalingUrl: servers.signalingUrl, room });
    await until(() => js.peers.length === 1, 'the bot in the match', 20000);
    const [peer] = js.peers;
    const got = [];
    js.on('message', (e) => {
      if (e.from === peer) got.push({ op: e.op, text: e.text() });
    });
    await relayReady(js, [peer]);
    for (let i = 0; i < N; i++) js.send(7, `${js.id} ${i}`, peer);
    await until(() => got.length >= N, `the bot's ${N} messages (${got.length} so far)`, 60000);
    assert.ok(got.every((g) => g.op === 7), 'op 7');
    assert.deepEqual(got.map((g) => g.text), Array.from({ length: N }, (_, i) => `${peer} ${i}`), 'in order, exactly once');
    await until(() => js.pending(peer) === 0, 'every message to the bot acknowledged', 30000);
    let timer;
    const { code, signal } = await Promise.race([exited, new Promise((r) => (timer = setTimeout(() => r({ code: 'timeout' }), 60000)))]);
    clearTimeout(timer);
    assert.equal(code, 0, `the bot exits 0 (${code} ${signal ?? ''})\n${stderr}`);
    const line = stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
    assert.ok(line, `the bot's report line\n${stdout}`);
    const report = JSON.parse(line);
    assert.equal(report.messages_sent, N);
    assert.deepEqual(report.messages_received, { [js.id]: N });
    assert.equal(report.in_order, true);
    assert.equal(report.duplicates, 0);
    assert.equal(got.length, N, 'nothing more arrived');
  } finally {
    if (bot.exitCode === null) bot.kill('SIGKILL');
    if (js) await js.leave();
  }
});
