// Test support: starts the real `ricochet-signaling` and `ricochet-relay` binaries (debug
// builds in target/debug, or RICOCHET_BIN_DIR) on free loopback ports with a shared secret,
// and stops them after. Their logs go to a temporary directory, printed when a test fails.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';
import { join as joinMatch, RicochetError } from '../ricochet.js';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const BIN_DIR = process.env.RICOCHET_BIN_DIR || join(REPO, 'target/debug');
export const SECRET = 'ricochet-js-test-secret-0123456789abcdef';

const live = new Set();
process.on('exit', (code) => {
  for (const child of live) child.kill('SIGKILL');
  // Keep the servers' logs when something failed, and say where they are.
  if (code === 0 && !process.exitCode) rmSync(logDir, { recursive: true, force: true });
  else process.stderr.write(`server logs: ${logDir}\n`);
});

export function bin(name) {
  const path = join(BIN_DIR, name);
  if (!existsSync(path)) throw new Error(`${path} is missing: cargo build -p ricochet-signaling -p ricochet-relay`);
  return path;
}

export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

export async function waitListening(port, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise((res) => {
      const c = createConnection({ port, host: '127.0.0.1' });
      c.on('connect', () => {
        c.destroy();
        res(true);
      });
      c.on('error', () => res(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${port} after ${timeoutMs} ms`);
    await sleep(30);
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const logDir = mkdtempSync(join(tmpdir(), 'ricochet-js-tests-'));
let logCount = 0;

function startProc(name, args) {
  const log = join(logDir, `${name}-${++logCount}.log`);
  const fd = openSync(log, 'w');
  const child = spawn(bin(name), args, { stdio: ['ignore', fd, fd], env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info' } });
  live.add(child);
  child.exited = new Promise((r) => child.on('exit', r));
  child.exited.then(() => live.delete(child));
  child.log = log;
  return child;
}

// Limits high enough that a test's many joins from 127.0.0.1 are never rate limited.
const GENEROUS = [
  '--join-rate-per-ip', '1000', '--join-burst-per-ip', '1000',
  '--match-join-rate', '1000', '--match-join-burst', '1000',
  '--create-rate-per-ip', '1000', '--create-burst-per-ip', '1000',
];

/**
 * Starts a relay and a signaling server that hands out its URL (or `relayUrl`, say a proxy's).
 * @returns {Promise<{signalingUrl: string, httpBase: string, relayUrl: string,
 *   restartRelay(downMs?: number): Promise<void>, stop(): Promise<void>, logs(): string}>}
 */
export async function startServers({ signalingArgs = [], relayArgs = [], generous = true, relayUrl: handedOut = null, relayPort: port = null } = {}) {
  const relayPort = port || (await freePort());
  const sigPort = await freePort();
  const relayUrl = handedOut || `ws://127.0.0.1:${relayPort}/`;
  const startRelay = () => startProc('ricochet-relay', ['--addr', `127.0.0.1:${relayPort}`, '--secret', SECRET, ...relayArgs]);
  let relay = startRelay();
  const signaling = startProc('ricochet-signaling', [
    '--addr', `127.0.0.1:${sigPort}`, '--relay-url', relayUrl, '--secret', SECRET,
    ...(generous ? GENEROUS : []), ...signalingArgs,
  ]);
  await waitListening(relayPort);
  await waitListening(sigPort);
  const procs = () => [signaling, relay];
  return {
    signalingUrl: `ws://127.0.0.1:${sigPort}`,
    httpBase: `http://127.0.0.1:${sigPort}`,
    relayUrl,
    relayPort,
    sigPort,
    /** Kills the relay (SIGKILL: no close frames), waits `downMs`, starts it again on the same port. */
    async restartRelay(downMs = 300) {
      relay.kill('SIGKILL');
      await relay.exited;
      await sleep(downMs);
      relay = startRelay();
      await waitListening(relayPort);
    },
    logs() {
      return procs().map((p) => `--- ${p.log}\n${readFileSync(p.log, 'utf8').slice(-4000)}`).join('\n');
    },
    async stop() {
      for (const p of procs()) if (p.exitCode === null && p.signalCode === null) p.kill('SIGTERM');
      await Promise.all(
        procs().map((p) => {
          const timer = setTimeout(() => p.kill('SIGKILL'), 3000);
          return p.exited.then(() => clearTimeout(timer));
        }),
      );
    },
  };
}

/** Resolves with the first event of `type` on `target` that satisfies `pred`. */
export function waitFor(target, type, pred = () => true, timeoutMs = 10000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      target.removeEventListener(type, fn);
      reject(new Error(`no matching ${type} event within ${timeoutMs} ms`));
    }, timeoutMs);
    const fn = (e) => {
      if (!pred(e)) return;
      clearTimeout(timer);
      target.removeEventListener(type, fn);
      resolve(e);
    };
    target.addEventListener(type, fn);
  });
}

/** Polls `cond` until it holds. */
export async function until(cond, what = 'condition', timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** Waits until `match` has a relay connection and knows every peer in `peers` on it. */
export async function relayReady(match, peers = match.peers) {
  await until(() => match.relayConnected && peers.every((p) => match._numOf.has(p)), 'relay membership', 10000);
}

/**
 * A member driven by hand, for hostile tests: joins signaling with a raw WebSocket (no
 * client library), and with `relay: true` also connects to the relay with its ticket.
 * `sendFrame(bytes)` sends a raw relay frame; `numOf(peer)` is a peer's relay member number.
 */
export async function rawMember(signalingUrl, room, { relay = true } = {}) {
  const sig = new WebSocket(`${signalingUrl}/${room}`);
  const state = { id: null, ticket: null, members: new Map(), sig, relay: null };
  const ticket = new Promise((resolve, reject) => {
    sig.onerror = () => reject(new Error('raw member: signaling refused'));
    sig.onmessage = (ev) => {
      const m = JSON.parse(ev.data);
      if (m.IdAssigned) state.id = m.IdAssigned;
      if (m.Ricochet && m.Ricochet.type === 'ticket') resolve(m.Ricochet);
    };
  });
  state.ticket = await ticket;
  if (relay) {
    const t = state.ticket;
    const ws = new WebSocket(`${t.relay_url}?ticket=${t.ticket}`);
    ws.binaryType = 'arraybuffer';
    state.relay = ws;
    await new Promise((resolve, reject) => {
      ws.onerror = () => reject(new Error('raw member: relay refused'));
      ws.onmessage = (ev) => {
        const b = new Uint8Array(ev.data);
        const hex = (at) => [...b.subarray(at, at + 16)].map((x) => x.toString(16).padStart(2, '0')).join('');
        const uuid = (h) => `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
        if (b[0] === 0xf0) {
          for (let at = 4; at + 18 <= b.length; at += 18) state.members.set(uuid(hex(at + 2)), (b[at] << 8) | b[at + 1]);
          resolve();
        } else if (b[0] === 0xf1) state.members.set(uuid(hex(4)), (b[2] << 8) | b[3]);
      };
    });
  }
  state.numOf = (peer) => state.members.get(peer);
  state.sendFrame = (bytes) => state.relay.send(bytes instanceof Uint8Array ? bytes : Uint8Array.from(bytes));
  state.close = () => {
    try {
      sig.close(1000);
    } catch {}
    try {
      if (state.relay) state.relay.close(1000);
    } catch {}
  };
  return state;
}

/**
 * A TCP proxy to `127.0.0.1:targetPort`, to break connections the way networks do:
 * `drop()` ends every proxied connection on both sides without a WebSocket close frame;
 * `halfOpen()` cuts the client sides only, leaving the server side open and silent (the
 * server has not noticed: a half-open connection); `block(true)` refuses new connections.
 */
export async function tcpProxy(targetPort) {
  const pairs = new Set();
  let blocked = false;
  const server = createServer((client) => {
    if (blocked) {
      client.destroy();
      return;
    }
    const upstream = createConnection({ port: targetPort, host: '127.0.0.1' });
    const pair = { client, upstream, half: false };
    pairs.add(pair);
    client.pipe(upstream);
    upstream.pipe(client);
    const done = () => {
      pairs.delete(pair);
      client.destroy();
      if (!pair.half) upstream.destroy();
    };
    client.on('error', done);
    client.on('close', done);
    upstream.on('error', done);
    upstream.on('close', () => {
      pair.half = false;
      done();
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: server.address().port,
    count: () => pairs.size,
    drop() {
      for (const p of [...pairs]) {
        p.client.destroy();
        p.upstream.destroy();
      }
    },
    halfOpen() {
      for (const p of [...pairs]) {
        p.half = true;
        p.upstream.unpipe(p.client);
        p.client.unpipe(p.upstream);
        p.upstream.pause();
        p.client.destroy();
      }
    },
    block(on) {
      blocked = on;
    },
    close() {
      this.drop();
      server.close();
    },
  };
}

// The servers of one test file: started before its tests (handed to `started`) and stopped
// after them, once every member joined through the returned `member(options)` has left.
export function serversForFile(started, options) {
  let servers;
  const open = [];
  before(async () => {
    servers = await startServers(options);
    started(servers);
  });
  after(async () => {
    for (const m of open) await m.leave();
    await servers.stop();
  });
  return async function member(memberOptions) {
    const m = await joinMatch({ signalingUrl: servers.signalingUrl, ...memberOptions });
    open.push(m);
    return m;
  };
}

// An `assert.rejects` check: the error is a RicochetError with `code` (and HTTP `status`).
export const refused = (code, status) => (e) => {
  assert.ok(e instanceof RicochetError, `a RicochetError, not ${e}`);
  assert.equal(e.code, code, e.message);
  if (status !== undefined) assert.equal(e.status, status);
  return true;
};

