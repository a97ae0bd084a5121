// Ricochet JavaScript client: joins a match through `ricochet-signaling`, follows its presence
// and lobby, and exchanges reliable, ordered op-code messages with the other members through
// `ricochet-relay` (Nakama-style relayed multiplayer). One ES module, no dependencies; runs in
// browsers and in Node 20+ (Node 20 needs `--experimental-websocket`, or a `WebSocket`
// constructor passed in the options). Written from docs/PROTOCOL.md: sections 1 (signaling),
// 2 (relay) and 3 (peer-to-peer packets: control tags 5 Message and 6 MessageAck).
//
// It is relay-only: no WebRTC direct path and no ggrs session. See README.md.

/** Largest message payload, bytes (PROTOCOL.md section 3, Message). */
export const MAX_MESSAGE_BYTES = 2048;
/** Messages in flight (sent, not yet acknowledged) per receiver. */
export const MAX_IN_FLIGHT = 64;
/** Messages waiting behind those in flight, per receiver; `send` beyond that throws. */
export const MAX_QUEUED = 1024;
/** Out-of-order messages held per sender while an earlier one is missing. */
export const RECEIVE_WINDOW = 256;
/** An unacknowledged message is sent again this long after it was last sent, ms. */
export const RESEND_MS = 200;

const TAG_MESSAGE = 5;
const TAG_MESSAGE_ACK = 6;
const OP_PACKET = 0x01;
const OP_PACKETS = 0x02;
const OP_WELCOME = 0xf0;
const OP_JOIN = 0xf1;
const OP_LEAVE = 0xf2;
const OP_RENEW = 0xf4;
const FLAG_TARGETED = 0x01;
const BATCH_BYTES = 3072; // PROTOCOL.md section 3: a 0x02 frame holds at most 3 KiB of packets
const MATCH_ID = /^[0-9a-fA-F]{32}$/;
const KNOWN_JOIN_PARAMS = new Set(['next', 'meta', 'rejoinable', 'rejoin', 'password', 'spectate', 'rejoin_grace_secs']);
// Relay close codes after which reconnecting cannot help (PROTOCOL.md 2.5, Reconnecting).
const RELAY_FATAL = new Set([4000, 4003, 4004, 1002, 1003, 1009]);
// Relay close codes meaning "this ticket will not do": ask signaling for a fresh one first.
const RELAY_NEEDS_TICKET = new Set([4001, 4002, 4005]);

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const isNode = typeof process !== 'undefined' && !!(process.versions && process.versions.node);

/** An error with the server's (or this client's) machine-readable `code`. */
export class RicochetError extends Error {
  constructor(code, message, extra = {}) {
    super(message || code);
    this.name = 'RicochetError';
    /** Machine-readable code: the server's `error` string, or one of this client's. */
    this.code = code;
    /** HTTP status when the server answered one (0 when unknown). */
    this.status = extra.status || 0;
    if (extra.retryAfter != null) this.retryAfter = extra.retryAfter;
  }
}

/** The events a `Match` dispatches: an `Event` with the details as properties. */
export class MatchEvent extends Event {
  constructor(type, details) {
    super(type);
    if (details) Object.assign(this, details);
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP: POST /matches and GET /matches (PROTOCOL.md 1.1)

function httpUrl(base) {
  const u = new URL(base);
  if (u.protocol === 'ws:') u.protocol = 'http:';
  else if (u.protocol === 'wss:') u.protocol = 'https:';
  return u;
}

function wsUrl(base) {
  const u = new URL(base);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  return u;
}

function joinPath(u, segment) {
  const path = u.pathname.endsWith('/') ? u.pathname : `${u.pathname}/`;
  return path + segment;
}

async function httpError(res) {
  let body = null;
  try {
    body = JSON.parse(await res.text());
  } catch {
    body = null;
  }
  const code = body && typeof body.error === 'string' ? body.error : `http_${res.status}`;
  const message = body && typeof body.message === 'string' ? body.message : `HTTP ${res.status}`;
  const retry = res.headers.get('retry-after');
  return new RicochetError(code, message, { status: res.status, retryAfter: retry == null ? null : Number(retry) });
}

function camelMatch(m) {
  const out = {
    id: m.id,
    players: m.players,
    maxPlayers: m.max_players,
    minPlayers: m.min_players,
    public: m.public,
    metadata: m.metadata ?? null,
    labels: m.labels ?? {},
    locked: !!m.locked,
    started: !!m.started,
    lateJoin: m.late_join,
    rejoinGraceSecs: m.rejoin_grace_secs,
    path: m.path,
  };
  for (const k of Object.keys(out)) if (out[k] === undefined) delete out[k];
  return out;
}

/**
 * Creates a match with a server-generated ID (`POST /matches`).
 * @param {string} httpBase the signaling server, `http://host:port` (a `ws://` URL is accepted)
 * @param {{public?: boolean, maxPlayers?: number, minPlayers?: number, password?: string,
 *          labels?: Record<string,string>, lateJoin?: boolean, rejoinGraceSecs?: number,
 *          metadata?: object, fetch?: typeof fetch}} [options] `rejoinGraceSecs`: how long a
 *          member whose connection dropped keeps its place, `0..=` the server's
 *          `--rejoin-grace-secs` (0: not at all); default the server's
 * @returns {Promise<{id: string, path: string, maxPlayers: number, minPlayers?: number,
 *          public: boolean, labels: Record<string,string>, locked: boolean, lateJoin?: boolean,
 *          rejoinGraceSecs?: number}>}
 */
export async function createMatch(httpBase, options = {}) {
  const body = {};
  if (options.public !== undefined) body.public = !!options.public;
  if (options.maxPlayers !== undefined) body.max_players = options.maxPlayers;
  if (options.minPlayers !== undefined) body.min_players = options.minPlayers;
  if (options.password !== undefined) body.password = String(options.password);
  if (options.labels !== undefined) body.labels = options.labels;
  if (options.lateJoin !== undefined) body.late_join = !!options.lateJoin;
  if (options.rejoinGraceSecs !== undefined) body.rejoin_grace_secs = options.rejoinGraceSecs;
  if (options.metadata !== undefined) body.metadata = options.metadata;
  const u = httpUrl(httpBase);
  u.pathname = joinPath(u, 'matches');
  u.search = '';
  const res = await (options.fetch || fetch)(u, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (res.status !== 201 && !res.ok) throw await httpError(res);
  return camelMatch(await res.json());
}

/**
 * One page of public created matches (`GET /matches`).
 * @param {string} httpBase the signaling server, `http://host:port`
 * @param {{open?: boolean, limit?: number, after?: string, labels?: Record<string,string>,
 *          fetch?: typeof fetch}} [options] `labels`: only matches with exactly these label values
 * @returns {Promise<{matches: object[], next: string|null}>} pass `next` as `after` for the next page
 */
export async function listMatches(httpBase, options = {}) {
  const u = httpUrl(httpBase);
  u.pathname = joinPath(u, 'matches');
  const q = [];
  if (options.limit !== undefined) q.push(['limit', String(options.limit)]);
  if (options.after) q.push(['after', String(options.after)]);
  if (options.open !== undefined) q.push(['open', options.open ? 'true' : 'false']);
  for (const [k, v] of Object.entries(options.labels || {})) {
    if (k === 'limit' || k === 'after' || k === 'open') {
      throw new RicochetError('bad_request', `"${k}" cannot be a label filter`);
    }
    q.push([k, String(v)]);
  }
  u.search = q.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
  const res = await (options.fetch || fetch)(u);
  if (!res.ok) throw await httpError(res);
  const page = await res.json();
  return { matches: (page.matches || []).map(camelMatch), next: page.next ?? null };
}

/** Every page of `listMatches`, one match at a time (follows `next` until it is null). */
export async function* allMatches(httpBase, options = {}) {
  let after = options.after;
  for (;;) {
    const page = await listMatches(httpBase, { ...options, after });
    yield* page.matches;
    if (!page.next) return;
    after = page.next;
  }
}

// ---------------------------------------------------------------------------------------------
// Byte helpers

function uuidFromBytes(b, at) {
  let h = '';
  for (let i = 0; i < 16; i++) h += b[at + i].toString(16).padStart(2, '0');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function varintLen(v) {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

function putVarint(buf, at, v) {
  while (v >= 0x80) {
    buf[at++] = (v & 0x7f) | 0x80;
    v = Math.floor(v / 128);
  }
  buf[at++] = v;
  return at;
}

// Reads a u32 LEB128 varint; returns [value, next offset] or null if truncated or too large.
function getVarint(buf, at, end) {
  let v = 0;
  let mul = 1;
  for (let i = 0; i < 5; i++) {
    if (at >= end) return null;
    const b = buf[at++];
    v += (b & 0x7f) * mul;
    if (!(b & 0x80)) return v > 0xffffffff ? null : [v, at];
    mul *= 128;
  }
  return null;
}

function randomU32NonZero() {
  const a = new Uint32Array(1);
  do crypto.getRandomValues(a);
  while (a[0] === 0);
  return a[0];
}

function toBytes(data) {
  if (data == null) return new Uint8Array(0);
  if (typeof data === 'string') return encoder.encode(data);
  if (data instanceof Uint8Array) return data.slice();
  if (data instanceof ArrayBuffer) return new Uint8Array(data.slice(0));
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
  throw new RicochetError('bad_data', 'message data must be a string, a Uint8Array, an ArrayBuffer or a typed array');
}

// Backoff of PROTOCOL.md 2.5: 100 ms doubling to 500 ms, times a random factor in [0.75, 1.25).
function backoff(attempt) {
  const base = Math.min(500, 100 * 2 ** Math.min(attempt, 10));
  return base * (0.75 + Math.random() * 0.5);
}

// Token bucket keeping this client under the relay's per-client rates (PROTOCOL.md 2.6).
class Bucket {
  constructor(rate, burst) {
    this.rate = rate;
    this.burst = burst;
    this.tokens = burst;
    this.at = Date.now();
  }
  refill() {
    const now = Date.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) * this.rate) / 1000);
    this.at = now;
  }
}

function resolveWebSocket(ctor) {
  const WS = ctor || globalThis.WebSocket;
  if (typeof WS !== 'function') {
    throw new RicochetError(
      'no_websocket',
      'no WebSocket implementation: run Node 20 with --experimental-websocket (Node 22+ has one built in), ' +
        'or pass a WebSocket constructor as the `WebSocket` option',
    );
  }
  return WS;
}

// Node only: repeats a refused WebSocket handshake with node:http to read the server's HTTP
// status and JSON error, which the WebSocket API hides (PROTOCOL.md 1.1, Errors).
async function probeRefusal(url) {
  try {
    const u = new URL(url);
    const secure = u.protocol === 'wss:';
    const name = secure ? 'https' : 'http';
    const mod = await import(/* webpackIgnore: true */ /* @vite-ignore */ `node:${name}`);
    const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
    return await new Promise((resolve) => {
      const req = mod.request(
        {
          protocol: secure ? 'https:' : 'http:',
          hostname: u.hostname.replace(/^\[|\]$/g, ''),
          port: u.port || (secure ? 443 : 80),
          path: u.pathname + u.search,
          headers: {
            Connection: 'Upgrade',
            Upgrade: 'websocket',
            'Sec-WebSocket-Version': '13',
            'Sec-WebSocket-Key': key,
          },
          timeout: 5000,
        },
      );
      req.on('response', (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => {
          if (text.length < 4096) text += d;
        });
        res.on('end', () => {
          let body = null;
          try {
            body = JSON.parse(text);
          } catch {
            body = null;
          }
          resolve({ status: res.statusCode, body, retryAfter: res.headers['retry-after'] });
        });
        res.on('error', () => resolve({ status: res.statusCode, body: null }));
      });
      req.on('upgrade', (res, socket) => {
        // The retry was let in after all: leave at once with a close frame (code 1000).
        const mask = crypto.getRandomValues(new Uint8Array(4));
        const payload = [0x03 ^ mask[0], 0xe8 ^ mask[1]];
        socket.end(Uint8Array.from([0x88, 0x82, ...mask, ...payload]));
        resolve({ status: 101, body: null });
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (e) => resolve({ status: 0, body: null, message: e.message }));
      req.end();
    });
  } catch (e) {
    return { status: 0, body: null, message: String(e && e.message) };
  }
}

// ---------------------------------------------------------------------------------------------
// The match

/**
 * Joins a match and resolves once the server has welcomed this member.
 * @param {object} options
 * @param {string} options.signalingUrl the signaling server, `ws://host:port` (or `http://`)
 * @param {string} options.room a room name, or the 32-hex-digit ID of a created match
 * @param {number} [options.next] quick match: be grouped `next` at a time (2..=16)
 * @param {Record<string,string>} [options.properties] quick-match properties (exact match required)
 * @param {object} [options.meta] this member's presence metadata (a JSON object, <= 512 bytes)
 * @param {string} [options.password] for a match created with a password
 * @param {boolean} [options.rejoinable] take the membership back after a dropped connection
 * @param {number} [options.rejoinGraceSecs] when this join makes the room (its first member, or
 *        a quick-match group's): the room's rejoin grace, `0..=` the server's (0: no rejoining);
 *        a join into an existing match keeps its grace (`match.rejoinGraceSecs` says which)
 * @param {Function} [options.WebSocket] a WebSocket constructor (default: globalThis.WebSocket)
 * @param {number} [options.timeoutMs] give up joining after this long (default 15000)
 * @param {boolean} [options.diagnose] Node only: on a refused handshake, repeat it with node:http
 *        to read the HTTP error (default true in Node)
 * @param {{framesPerSecond?: number, bytesPerSecond?: number}} [options.relayRate] what this
 *        client allows itself to send to the relay (default 800 frames/s, 100 KiB/s: under the
 *        relay's default limits)
 * @returns {Promise<Match>}
 */
export function join(options) {
  return new Match(options)._join();
}

export class Match extends EventTarget {
  constructor(options = {}) {
    super();
    if (!options.signalingUrl) throw new RicochetError('bad_options', 'signalingUrl is required');
    if (!options.room) throw new RicochetError('bad_options', 'room is required');
    this._WS = resolveWebSocket(options.WebSocket);
    this._opts = options;
    // Listeners from the options are added first, so that they see every event, `welcome` included.
    for (const [type, fn] of Object.entries(options.on || {})) this.addEventListener(type, fn);
    /** This member's peer ID (UUID). */
    this.id = null;
    /** The match ID (32 hex digits). */
    this.matchId = null;
    /** The room name, or null for a match joined by ID. */
    this.name = null;
    this.maxPlayers = null;
    /** Every member, this one included, in join order: peer ID -> {peer, meta, ready}. */
    this.members = new Map();
    /** The lobby: {host, minPlayers, started, lateJoin, roster}, or null (quick-match groups). */
    this.lobby = null;
    /** The match's labels (for a quick match: its properties). */
    this.labels = {};
    /** Whether the relay connection is up. */
    this.relayConnected = false;
    /** Counters, for tests and curiosity. */
    this.stats = {
      messagesSent: 0, // accepted by send(), per receiver
      messagesDelivered: 0,
      packetsSent: 0,
      resends: 0,
      duplicates: 0,
      dropped: 0, // packets ignored as malformed, unknown or out of window
      relayReconnects: 0,
    };
    this._closed = false;
    this._rejoin = null; // {token, grace_secs}
    this._sig = null;
    this._keepAlive = null;
    this._ticket = null; // newest {relay_url, ticket, match_id, expires_at}
    this._ticketGen = 0;
    this._relay = null; // the WebSocket once welcomed
    this._relayAttempt = 0; // failed attempts since the last success
    this._relayFailingSince = 0;
    this._relayTimer = null;
    this._relayWantTicket = false; // waiting for a ticket newer than _relayUsedGen
    this._relayUsedGen = 0;
    this._relayGaveUp = false;
    this._relayConnecting = false;
    this._numOf = new Map(); // peer -> relay member number
    this._peerOf = new Map(); // relay member number -> peer
    this._out = new Map(); // peer -> {stream, nextSeq, inflight: [], queue: [], pathSeq}
    this._in = new Map(); // peer -> {stream, next, held: Map(seq -> msg), ackDue}
    this._flushTimer = null;
    this._tick = null;
    this._startWaiters = [];
    const rate = options.relayRate || {};
    this._frames = new Bucket(rate.framesPerSecond || 800, rate.framesPerSecond || 400);
    this._bytes = new Bucket(rate.bytesPerSecond || 100 * 1024, Math.min(rate.bytesPerSecond || 64 * 1024, 96 * 1024));
  }

  /** The host's peer ID (null without a lobby). */
  get host() {
    return this.lobby ? this.lobby.host : null;
  }

  /**
   * How long the server keeps this member's place after its connection drops, in seconds (the
   * match's rejoin grace); null if it keeps none (not `rejoinable`, or rejoining is off).
   */
  get rejoinGraceSecs() {
    return this._rejoin ? this._rejoin.grace_secs : null;
  }

  /** The other members' peer IDs, in join order. */
  get peers() {
    return [...this.members.keys()].filter((p) => p !== this.id);
  }

  /** Adds a listener; returns a function that removes it. */
  on(type, fn) {
    this.addEventListener(type, fn);
    return () => this.removeEventListener(type, fn);
  }

  /** Resolves with the next event of `type` (rejects after `timeoutMs` if given). */
  once(type, timeoutMs) {
    return new Promise((resolve, reject) => {
      let timer = null;
      const fn = (e) => {
        if (timer) clearTimeout(timer);
        resolve(e);
      };
      this.addEventListener(type, fn, { once: true });
      if (timeoutMs) {
        timer = setTimeout(() => {
          this.removeEventListener(type, fn);
          reject(new RicochetError('timeout', `no ${type} event within ${timeoutMs} ms`));
        }, timeoutMs);
      }
    });
  }

  _emit(type, details) {
    this.dispatchEvent(new MatchEvent(type, details));
  }

  // --- signaling -------------------------------------------------------------------------------

  _joinUrl(rejoinToken) {
    const o = this._opts;
    const u = wsUrl(o.signalingUrl);
    u.pathname = joinPath(u, encodeURIComponent(o.room));
    const q = [];
    if (rejoinToken) {
      q.push(['rejoin', rejoinToken]);
    } else {
      if (o.next !== undefined) q.push(['next', String(o.next)]);
      if (o.meta !== undefined && o.meta !== null) q.push(['meta', JSON.stringify(o.meta)]);
      if (o.rejoinable) q.push(['rejoinable', '1']);
      if (o.rejoinGraceSecs !== undefined) q.push(['rejoin_grace_secs', String(o.rejoinGraceSecs)]);
      if (o.password !== undefined) q.push(['password', String(o.password)]);
      for (const [k, v] of Object.entries(o.properties || {})) {
        if (KNOWN_JOIN_PARAMS.has(k)) throw new RicochetError('bad_request', `"${k}" cannot be a property name`);
        q.push([k, String(v)]);
      }
    }
    u.search = q.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
    return u.toString();
  }

  _join() {
    let url;
    try {
      url = this._joinUrl(null);
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise((resolve, reject) => {
      const timeoutMs = this._opts.timeoutMs || 15000;
      let settled = false;
      const fail = (err) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this._shutdown();
        reject(err);
      };
      const timer = setTimeout(() => fail(new RicochetError('timeout', `not welcomed within ${timeoutMs} ms`)), timeoutMs);
      this._connectSignaling(url, {
        welcomed: () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          resolve(this);
        },
        refused: async (ev) => {
          if (settled) return;
          if (ev.opened) {
            fail(new RicochetError(ev.error ? ev.error.code : 'closed', ev.error ? ev.error.message : `signaling closed the connection (${ev.code}${ev.reason ? ` ${ev.reason}` : ''}) before the welcome`));
            return;
          }
          // The handshake was refused or the server is unreachable. Browsers (and Node's
          // WebSocket) do not tell the HTTP status; in Node, ask again with node:http.
          if (isNode && this._opts.diagnose !== false) {
            const p = await probeRefusal(url);
            if (p.status >= 400) {
              const code = p.body && typeof p.body.error === 'string' ? p.body.error : `http_${p.status}`;
              const message = p.body && typeof p.body.message === 'string' ? p.body.message : `HTTP ${p.status}`;
              fail(new RicochetError(code, message, { status: p.status, retryAfter: p.retryAfter == null ? null : Number(p.retryAfter) }));
              return;
            }
            if (p.status === 0) {
              fail(new RicochetError('connection_failed', `cannot reach the signaling server: ${p.message || 'connection failed'}`));
              return;
            }
          }
          fail(new RicochetError('connection_refused', 'the signaling server refused the WebSocket or could not be reached (the WebSocket API does not expose the HTTP error; see README.md)'));
        },
      });
    });
  }

  // Opens a signaling socket to `url`; `hooks.welcomed()` on the welcome, `hooks.refused(ev)`
  // if it fails or closes before one ({opened, code, reason, error}).
  _connectSignaling(url, hooks) {
    let ws;
    try {
      ws = new this._WS(url);
    } catch (e) {
      hooks.refused({ opened: false, code: 0, reason: String(e && e.message) });
      return;
    }
    this._sig = ws;
    let opened = false;
    let welcomed = false;
    let ended = false;
    let lastError = null;
    const end = (code, reason) => {
      if (ended) return;
      ended = true;
      if (this._sig === ws) this._sig = null;
      if (!welcomed) hooks.refused({ opened, code, reason, error: lastError });
      else this._signalingClosed(code, reason);
    };
    ws.onopen = () => {
      opened = true;
    };
    ws.onerror = () => {
      // Node 20's WebSocket fires no `close` after a refused handshake: end here.
      if (!opened) end(1006, 'handshake failed');
    };
    ws.onclose = (ev) => end(ev.code, ev.reason);
    ws.onmessage = (ev) => {
      if (ws !== this._sig || typeof ev.data !== 'string') return;
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      try {
        const r = this._onSignal(msg);
        if (r === 'welcome' && !welcomed) {
          welcomed = true;
          hooks.welcomed();
        } else if (r && r.error && !welcomed) {
          lastError = r.error;
        }
      } catch (e) {
        this._emit('error', { code: 'client_error', message: String(e && e.stack) });
      }
    };
  }

  _sendSignal(obj) {
    const ws = this._sig;
    if (!ws || ws.readyState !== 1) return false;
    ws.send(JSON.stringify(obj));
    return true;
  }

  // A lobby request: throws if the signaling connection is down (while rejoining, say).
  _request(obj) {
    this._requireOpen();
    if (!this._sendSignal(obj)) throw new RicochetError('not_connected', 'the signaling connection is down (rejoining); try again');
  }

  _onSignal(msg) {
    if (msg === null || typeof msg !== 'object') return null;
    if (typeof msg.IdAssigned === 'string') {
      this.id = msg.IdAssigned.toLowerCase();
      return null;
    }
    if (typeof msg.NewPeer === 'string' || typeof msg.PeerLeft === 'string' || msg.Signal) {
      return null; // matchbox events: the Ricochet presence events carry the same and more
    }
    const m = msg.Ricochet;
    if (!m || typeof m !== 'object') return null;
    switch (m.type) {
      case 'welcome': {
        const again = this._welcomedOnce;
        this._welcomedOnce = true;
        this._onWelcome(m, again);
        return 'welcome';
      }
      case 'peer_joined': {
        const peer = String(m.peer).toLowerCase();
        this.members.set(peer, { peer, meta: m.meta ?? null, ready: false });
        this._emit('peerjoined', { peer, meta: m.meta ?? null });
        return null;
      }
      case 'peer_left': {
        const peer = String(m.peer).toLowerCase();
        if (!this.members.delete(peer)) return null;
        this._forgetPeer(peer);
        if (this.lobby) this.lobby.ready = this._readyInJoinOrder();
        this._emit('peerleft', { peer });
        return null;
      }
      case 'peer_meta': {
        const peer = String(m.peer).toLowerCase();
        const member = this.members.get(peer);
        if (member) member.meta = m.meta ?? null;
        this._emit('peermeta', { peer, meta: m.meta ?? null });
        return null;
      }
      case 'peer_ready': {
        const peer = String(m.peer).toLowerCase();
        const member = this.members.get(peer);
        if (member) member.ready = !!m.ready;
        if (this.lobby) this.lobby.ready = this._readyInJoinOrder();
        this._emit('ready', { peer, ready: !!m.ready });
        return null;
      }
      case 'host': {
        const peer = String(m.peer).toLowerCase();
        if (this.lobby) this.lobby.host = peer;
        this._emit('host', { peer });
        return null;
      }
      case 'started': {
        const roster = Array.isArray(m.roster) ? m.roster.map((p) => String(p).toLowerCase()) : [];
        if (this.lobby) {
          this.lobby.started = true;
          this.lobby.roster = roster;
        }
        for (const w of this._startWaiters.splice(0)) w.resolve(roster);
        this._emit('started', { roster });
        return null;
      }
      case 'ticket':
        this._onTicket(m);
        return null;
      case 'error': {
        const code = typeof m.code === 'string' ? m.code : 'error';
        const message = typeof m.message === 'string' ? m.message : code;
        if (code === 'not_host' || code === 'not_enough_ready' || code === 'already_started' || code === 'no_lobby') {
          const w = this._startWaiters.shift();
          if (w) w.reject(new RicochetError(code, message));
        }
        this._emit('error', { code, message });
        return { error: { code, message } };
      }
      default:
        return null; // unknown types are ignored (PROTOCOL.md 1.3.2)
    }
  }

  // The ready members, in join order (the order of `members`).
  _readyInJoinOrder() {
    return [...this.members.values()].filter((v) => v.ready).map((v) => v.peer);
  }

  _onWelcome(m, again) {
    this.matchId = typeof m.match_id === 'string' ? m.match_id.toLowerCase() : this.matchId;
    this.name = m.name ?? null;
    this.maxPlayers = m.max_players ?? null;
    this.labels = m.labels && typeof m.labels === 'object' ? m.labels : {};
    this._rejoin = m.rejoin && typeof m.rejoin.token === 'string' ? m.rejoin : null;
    const lobby = m.lobby && typeof m.lobby === 'object' ? m.lobby : null;
    const ready = new Set(lobby && Array.isArray(lobby.ready) ? lobby.ready.map((p) => String(p).toLowerCase()) : []);
    const before = new Map(this.members);
    const beforeLobby = this.lobby;
    this.members.clear();
    for (const e of Array.isArray(m.members) ? m.members : []) {
      const peer = String(e.peer).toLowerCase();
      this.members.set(peer, { peer, meta: e.meta ?? null, ready: ready.has(peer) });
    }
    this.lobby = lobby
      ? {
          host: lobby.host ? String(lobby.host).toLowerCase() : null,
          minPlayers: lobby.min_players ?? 2,
          started: !!lobby.started,
          lateJoin: !!lobby.late_join,
          ready: [...ready],
          roster: Array.isArray(lobby.roster) ? lobby.roster.map((p) => String(p).toLowerCase()) : null,
        }
      : null;
    if (again) {
      // A rejoin: presence events sent while away were lost, so report the difference.
      for (const peer of before.keys()) {
        if (!this.members.has(peer)) {
          this._forgetPeer(peer);
          this._emit('peerleft', { peer });
        }
      }
      for (const [peer, v] of this.members) {
        const old = before.get(peer);
        if (!old) this._emit('peerjoined', { peer, meta: v.meta });
        else if (JSON.stringify(old.meta) !== JSON.stringify(v.meta)) this._emit('peermeta', { peer, meta: v.meta });
        if ((old ? old.ready : false) !== v.ready) this._emit('ready', { peer, ready: v.ready });
      }
      if (this.lobby && beforeLobby) {
        if (this.lobby.host !== beforeLobby.host && this.lobby.host) this._emit('host', { peer: this.lobby.host });
        if (this.lobby.started && !beforeLobby.started) {
          for (const w of this._startWaiters.splice(0)) w.resolve(this.lobby.roster || []);
          this._emit('started', { roster: this.lobby.roster || [] });
        }
      }
      this._emit('signaling', { state: 'connected' });
      this._emit('welcome', { match: this, rejoined: true });
      return;
    }
    this._keepAlive = setInterval(() => this._sendSignal('KeepAlive'), 10000);
    this._tick = setInterval(() => this._flush(), 50);
    this._emit('welcome', { match: this, rejoined: false });
  }

  _signalingClosed(code, reason) {
    if (this._closed) return;
    // A dropped connection (no close frame: 1006) of a rejoinable member: take it back.
    if (code === 1006 && this._rejoin && this._opts.rejoinable) {
      this._rejoinLoop(Date.now() + this._rejoin.grace_secs * 1000, 0);
      return;
    }
    this._close(code, reason || 'signaling closed');
  }

  _rejoinLoop(deadline, attempt) {
    if (this._closed) return;
    if (Date.now() >= deadline) {
      this._close(1006, 'signaling connection lost');
      return;
    }
    if (attempt === 0) this._emit('signaling', { state: 'reconnecting' });
    setTimeout(() => {
      if (this._closed) return;
      this._connectSignaling(this._joinUrl(this._rejoin.token), {
        welcomed: () => {},
        refused: (ev) => {
          if (ev.error && ev.error.code === 'rejoin_refused') this._close(1006, 'rejoin refused');
          else this._rejoinLoop(deadline, attempt + 1);
        },
      });
    }, backoff(attempt));
  }

  // --- lobby -----------------------------------------------------------------------------------

  /** Replaces this member's metadata (a JSON object); the others get `peermeta`. */
  setMeta(meta) {
    if (meta === null || typeof meta !== 'object' || Array.isArray(meta)) throw new RicochetError('bad_meta', 'meta must be a JSON object');
    this._request({ Ricochet: { type: 'set_meta', meta } });
    const me = this.members.get(this.id);
    if (me) me.meta = meta;
  }

  /** Marks this member ready (or not); everyone, this member included, gets `ready`. */
  setReady(ready = true) {
    this._request({ Ricochet: { type: 'set_ready', ready: !!ready } });
  }

  /**
   * Host only: starts the match with the ready members. Resolves with the roster on `started`;
   * rejects with the server's error (`not_host`, `not_enough_ready`, `already_started`,
   * `no_lobby` in a quick-match group).
   */
  start() {
    this._request({ Ricochet: { type: 'start' } });
    return new Promise((resolve, reject) => {
      this._startWaiters.push({ resolve, reject });
    });
  }

  _requireOpen() {
    if (this._closed) throw new RicochetError('closed', 'the match has been left or closed');
  }

  // --- relay -----------------------------------------------------------------------------------

  _onTicket(t) {
    if (typeof t.ticket !== 'string') return;
    this._ticket = t;
    this._ticketGen++;
    if (!t.relay_url) {
      if (this._ticketGen === 1) this._emit('error', { code: 'no_relay', message: 'the signaling server has no relay (--relay-url): messages cannot be sent' });
      return;
    }
    const ws = this._relay;
    if (ws && ws.readyState === 1) {
      // RENEW (PROTOCOL.md 2.3): keep the relay membership alive with each new ticket.
      const frame = new Uint8Array(2 + t.ticket.length);
      frame[0] = OP_RENEW;
      frame.set(encoder.encode(t.ticket), 2);
      this._take(frame.length, true);
      ws.send(frame);
      return;
    }
    if (this._relayGaveUp || this._closed) return;
    if (this._relayWaiting) {
      clearTimeout(this._relayTimer);
      this._relayTimer = null;
      this._relayWaiting = false;
      this._relayConnect();
    } else if (!this._relayConnecting && !this._relayTimer && !this._relay) {
      this._relayConnect();
    }
  }

  _relayConnect() {
    if (this._closed || !this._ticket || !this._ticket.relay_url) return;
    this._relayConnecting = true;
    this._relayWantTicket = false;
    this._relayUsedGen = this._ticketGen;
    const t = this._ticket;
    const url = `${t.relay_url}${t.relay_url.includes('?') ? '&' : '?'}ticket=${t.ticket}`;
    let ws;
    try {
      ws = new this._WS(url);
    } catch (e) {
      this._relayConnecting = false;
      this._relayGaveUp = true;
      this._emit('relay', { state: 'failed', code: 0, reason: String(e && e.message) });
      return;
    }
    ws.binaryType = 'arraybuffer';
    this._relayPending = ws;
    let opened = false;
    let welcomed = false;
    let ended = false;
    const noWelcome = setTimeout(() => {
      end(4010, 'no welcome');
      try {
        ws.close();
      } catch {
        /* not open yet */
      }
    }, 5000); // the connect timeout of PROTOCOL.md 2.5
    const end = (code, reason) => {
      if (ended) return;
      ended = true;
      clearTimeout(noWelcome);
      if (this._relay === ws) this._relay = null;
      if (this._relayPending === ws) this._relayPending = null;
      if (!welcomed) this._relayConnecting = false;
      this._relayDropped(code, reason, welcomed);
    };
    ws.onopen = () => {
      opened = true;
    };
    ws.onerror = () => {
      if (!opened) end(1006, 'handshake failed'); // Node 20 fires no close after this
    };
    ws.onclose = (ev) => end(ev.code, ev.reason);
    ws.onmessage = (ev) => {
      if (ended || !(ev.data instanceof ArrayBuffer)) return;
      const b = new Uint8Array(ev.data);
      if (!welcomed) {
        if (b.length < 4 || b[0] !== OP_WELCOME) {
          end(1002, 'not a Ricochet relay');
          try {
            ws.close();
          } catch {
            /* closing anyway */
          }
          return;
        }
        welcomed = true;
        clearTimeout(noWelcome);
        this._relayConnecting = false;
        this._relayPending = null;
        this._relay = ws;
        this._onRelayWelcome(b);
        return;
      }
      try {
        this._onRelayFrame(b);
      } catch (e) {
        this.stats.dropped++;
        this._emit('error', { code: 'client_error', message: String(e && e.stack) });
      }
    };
  }

  _onRelayWelcome(b) {
    this._numOf.clear();
    this._peerOf.clear();
    for (let at = 4; at + 18 <= b.length; at += 18) this._addRelayMember((b[at] << 8) | b[at + 1], uuidFromBytes(b, at + 2));
    if (this._ticketGen > this._relayUsedGen) {
      // A ticket came while connecting: pass it on at once.
      const t = this._ticket;
      const frame = new Uint8Array(2 + t.ticket.length);
      frame[0] = OP_RENEW;
      frame.set(encoder.encode(t.ticket), 2);
      this._take(frame.length, true);
      this._relay.send(frame);
    }
    if (this._everConnected) this.stats.relayReconnects++;
    this._everConnected = true;
    this._relayAttempt = 0;
    this._relayFailingSince = 0;
    this.relayConnected = true;
    this._emit('relay', { state: 'connected' });
    this._flush();
  }

  _addRelayMember(num, peer) {
    const old = this._numOf.get(peer);
    if (old !== undefined) this._peerOf.delete(old);
    this._numOf.set(peer, num);
    this._peerOf.set(num, peer);
    // What was in flight to it may be lost with its old connection: send it again now, and
    // tell it where its stream stands.
    const out = this._out.get(peer);
    if (out) for (const m of out.inflight) m.lastSent = 0;
    const inn = this._in.get(peer);
    if (inn && inn.stream) inn.ackDue = true;
    this._scheduleFlush(0);
  }

  _onRelayFrame(b) {
    if (b.length < 4) {
      this.stats.dropped++;
      return;
    }
    const op = b[0];
    const sender = (b[2] << 8) | b[3];
    if (op === OP_JOIN) {
      if (b.length >= 20) this._addRelayMember(sender, uuidFromBytes(b, 4));
      return;
    }
    if (op === OP_LEAVE) {
      const peer = this._peerOf.get(sender);
      if (peer !== undefined) {
        this._peerOf.delete(sender);
        if (this._numOf.get(peer) === sender) this._numOf.delete(peer);
      }
      return;
    }
    if (op !== OP_PACKET && op !== OP_PACKETS) return; // relay events, other game opcodes
    const peer = this._peerOf.get(sender);
    if (peer === undefined || peer === this.id) {
      this.stats.dropped++;
      return;
    }
    if (op === OP_PACKET) {
      this._onPacket(peer, b, 4, b.length);
      return;
    }
    let at = 4;
    while (at + 2 <= b.length) {
      const len = (b[at] << 8) | b[at + 1];
      at += 2;
      if (at + len > b.length) {
        this.stats.dropped++;
        return;
      }
      this._onPacket(peer, b, at, at + len);
      at += len;
    }
  }

  // One peer-to-peer packet (PROTOCOL.md 3): 3-byte path header, then `00 00` and a control tag.
  _onPacket(peer, b, at, end) {
    if (end - at < 6 || b[at + 3] !== 0 || b[at + 4] !== 0) {
      if (end - at < 3) this.stats.dropped++;
      return; // ggrs messages and other control messages are not for this client
    }
    const tag = b[at + 5];
    let p = at + 6;
    if (tag === TAG_MESSAGE) {
      const s = getVarint(b, p, end);
      if (!s) return void this.stats.dropped++;
      const q = getVarint(b, s[1], end);
      if (!q) return void this.stats.dropped++;
      p = q[1];
      if (p >= end) return void this.stats.dropped++;
      const opcode = b[p++];
      const l = getVarint(b, p, end);
      if (!l || l[0] > MAX_MESSAGE_BYTES || l[1] + l[0] !== end) return void this.stats.dropped++;
      this._onMessage(peer, s[0], q[0], opcode, b.slice(l[1], end));
    } else if (tag === TAG_MESSAGE_ACK) {
      const s = getVarint(b, p, end);
      if (!s) return void this.stats.dropped++;
      const n = getVarint(b, s[1], end);
      if (!n) return void this.stats.dropped++;
      this._onAck(peer, s[0], n[0]);
    }
  }

  _onMessage(peer, stream, seq, op, data) {
    if (stream === 0) return void this.stats.dropped++;
    let r = this._in.get(peer);
    if (!r) {
      r = { stream: 0, next: 0, held: new Map(), ackDue: false, retired: [] };
      this._in.set(peer, r);
    }
    if (stream !== r.stream) {
      // Not the start of a stream, or a late copy of a stream this sender replaced: no ack.
      if (seq !== 0 || r.retired.includes(stream)) return void this.stats.dropped++;
      if (r.stream) {
        r.retired.push(r.stream);
        if (r.retired.length > 4) r.retired.shift();
      }
      r.stream = stream;
      r.next = 0;
      r.held.clear();
    }
    r.ackDue = true;
    this._scheduleFlush(5);
    const ahead = (seq - r.next) >>> 0;
    if (ahead === 0) {
      this._deliver(peer, op, data);
      r.next = (r.next + 1) >>> 0;
      for (let m = r.held.get(r.next); m; m = r.held.get(r.next)) {
        r.held.delete(r.next);
        r.next = (r.next + 1) >>> 0;
        this._deliver(peer, m.op, m.data);
      }
    } else if (ahead < RECEIVE_WINDOW) {
      if (r.held.has(seq)) this.stats.duplicates++;
      else r.held.set(seq, { op, data });
    } else if (ahead >= 0x80000000) {
      this.stats.duplicates++;
    } else {
      this.stats.dropped++;
    }
  }

  _deliver(from, op, data) {
    this.stats.messagesDelivered++;
    this._emit('message', { from, op, data, text: () => decoder.decode(data) });
  }

  _onAck(peer, stream, next) {
    const s = this._out.get(peer);
    if (!s || stream !== s.stream) return;
    const beyond = (next - s.nextSeq) >>> 0; // next may be at most the highest seq sent + 1
    if (beyond !== 0 && beyond < 0x80000000) return void this.stats.dropped++;
    let removed = 0;
    while (s.inflight.length) {
      const behind = (next - s.inflight[0].seq) >>> 0; // > 0 and < 2^31: acknowledged
      if (behind === 0 || behind >= 0x80000000) break;
      s.inflight.shift();
      removed++;
    }
    if (removed) this._scheduleFlush(0);
  }

  _relayDropped(code, reason, wasWelcomed) {
    if (wasWelcomed) {
      this.relayConnected = false;
      this._numOf.clear();
      this._peerOf.clear();
      for (const s of this._out.values()) for (const m of s.inflight) m.lastSent = 0;
    }
    if (this._closed) return;
    const now = Date.now();
    if (!this._relayFailingSince) this._relayFailingSince = now;
    if (RELAY_FATAL.has(code) || now - this._relayFailingSince > 60000) {
      this._relayGaveUp = true;
      this._emit('relay', { state: 'failed', code, reason });
      this._emit('error', { code: 'relay_failed', message: `relay connection ended for good (${code}${reason ? ` ${reason}` : ''})` });
      return;
    }
    this._emit('relay', { state: wasWelcomed ? 'reconnecting' : 'retrying', code, reason });
    const wait = backoff(this._relayAttempt++);
    if (RELAY_NEEDS_TICKET.has(code) || code === 1001) {
      // The ticket held will not do (or the relay is going away and the match may move): ask
      // signaling for a fresh one, and connect with it.
      this._sendSignal({ Ricochet: { type: 'renew_ticket' } });
      if (code !== 1001) this._relayWantTicket = true;
    }
    this._relayTimer = setTimeout(() => this._relayRetry(), wait);
  }

  _relayRetry() {
    this._relayTimer = null;
    if (this._closed) return;
    if (this._relayWantTicket && this._ticketGen <= this._relayUsedGen) {
      // Wait for the fresh ticket (_onTicket connects); if none comes within 5 s, ask again
      // and try with the newest there is.
      this._relayWaiting = true;
      this._relayTimer = setTimeout(() => {
        this._relayTimer = null;
        this._relayWaiting = false;
        this._sendSignal({ Ricochet: { type: 'renew_ticket' } });
        this._relayConnect();
      }, 5000);
      return;
    }
    this._relayConnect();
  }

  // --- messages --------------------------------------------------------------------------------

  /**
   * Sends a reliable, ordered message.
   * @param {number} op the application's op code, 0..=255
   * @param {Uint8Array|ArrayBuffer|string} [data] at most 2048 bytes (strings as UTF-8)
   * @param {string|string[]} [to] a peer ID or a list of them; everyone else when omitted
   * @returns {number} how many members it was queued for
   */
  send(op, data, to) {
    this._requireOpen();
    if (!Number.isInteger(op) || op < 0 || op > 255) throw new RicochetError('bad_op', 'op must be an integer in 0..=255');
    const bytes = toBytes(data);
    if (bytes.length > MAX_MESSAGE_BYTES) throw new RicochetError('message_too_large', `message data is ${bytes.length} bytes, the most is ${MAX_MESSAGE_BYTES}`);
    let targets;
    if (to === undefined || to === null) targets = this.peers;
    else {
      targets = [...new Set((Array.isArray(to) ? to : [to]).map((p) => String(p).toLowerCase()))];
      for (const p of targets) {
        if (p === this.id || !this.members.has(p)) throw new RicochetError('unknown_peer', `${p} is not another member of this match`);
      }
    }
    const states = targets.map((p) => this._outState(p));
    for (let i = 0; i < states.length; i++) {
      const s = states[i];
      if (s.inflight.length >= MAX_IN_FLIGHT && s.queue.length >= MAX_QUEUED) {
        throw new RicochetError('queue_full', `${MAX_QUEUED} messages already wait for ${targets[i]}; nothing was sent`);
      }
    }
    for (const s of states) {
      const m = { seq: s.nextSeq, op, data: bytes, lastSent: 0, sends: 0 };
      s.nextSeq = (s.nextSeq + 1) >>> 0;
      if (s.inflight.length < MAX_IN_FLIGHT && s.queue.length === 0) s.inflight.push(m);
      else s.queue.push(m);
      this.stats.messagesSent++;
    }
    if (states.length) this._scheduleFlush(0);
    return states.length;
  }

  /** Messages to `peer` not yet acknowledged (in flight and queued); all peers when omitted. */
  pending(peer) {
    let n = 0;
    for (const [p, s] of this._out) if (peer === undefined || p === peer) n += s.inflight.length + s.queue.length;
    return n;
  }

  _outState(peer) {
    let s = this._out.get(peer);
    if (!s) {
      s = { stream: randomU32NonZero(), nextSeq: 0, inflight: [], queue: [], pathSeq: 0 };
      this._out.set(peer, s);
    }
    return s;
  }

  _forgetPeer(peer) {
    this._out.delete(peer);
    this._in.delete(peer);
  }

  _scheduleFlush(delay) {
    if (this._flushTimer || this._closed) return;
    this._flushTimer = setTimeout(() => {
      this._flushTimer = null;
      this._flush();
    }, delay);
  }

  // Whether the budget allows a frame of `bytes` now; takes it if so (or always, if `force`).
  _take(bytes, force) {
    this._frames.refill();
    this._bytes.refill();
    if (!force && (this._frames.tokens < 1 || this._bytes.tokens < bytes)) return false;
    this._frames.tokens -= 1;
    this._bytes.tokens -= bytes;
    return true;
  }

  _flush() {
    const ws = this._relay;
    if (!ws || ws.readyState !== 1 || this._closed) return;
    const now = Date.now();
    const peers = new Set([...this._out.keys(), ...this._in.keys()]);
    for (const peer of peers) {
      if (ws.bufferedAmount > 256 * 1024) {
        this._scheduleFlush(20);
        return;
      }
      const num = this._numOf.get(peer);
      if (num === undefined) continue;
      const s = this._out.get(peer);
      const r = this._in.get(peer);
      const items = [];
      if (r && r.ackDue) items.push(r);
      if (s) {
        while (s.inflight.length < MAX_IN_FLIGHT && s.queue.length) s.inflight.push(s.queue.shift());
        for (const m of s.inflight) if (m.lastSent === 0 || now - m.lastSent >= RESEND_MS) items.push(m);
      }
      if (!items.length) continue;
      const out = s || this._outState(peer);
      let i = 0;
      while (i < items.length) {
        // As many packets as fit one frame of at most BATCH_BYTES of packets.
        const packets = [];
        let size = 0;
        for (; i < items.length; i++) {
          const it = items[i];
          const len = it === r ? 6 + varintLen(r.stream) + varintLen(r.next) : 7 + varintLen(out.stream) + varintLen(it.seq) + varintLen(it.data.length) + it.data.length;
          if (packets.length && size + 2 + len > BATCH_BYTES) break;
          packets.push([it, len]);
          size += 2 + len;
        }
        const single = packets.length === 1;
        const frameLen = 4 + (single ? packets[0][1] : size);
        if (!this._take(frameLen, false)) {
          this._scheduleFlush(20);
          return;
        }
        const f = new Uint8Array(frameLen);
        f[0] = single ? OP_PACKET : OP_PACKETS;
        f[1] = FLAG_TARGETED;
        f[2] = num >> 8;
        f[3] = num & 0xff;
        let at = 4;
        for (const [it, len] of packets) {
          if (!single) {
            f[at++] = len >> 8;
            f[at++] = len & 0xff;
          }
          f[at++] = out.pathSeq >> 8; // path header: sequence per receiver, flags 0
          f[at++] = out.pathSeq & 0xff;
          f[at++] = 0;
          out.pathSeq = (out.pathSeq + 1) & 0xffff;
          f[at++] = 0;
          f[at++] = 0;
          if (it === r) {
            f[at++] = TAG_MESSAGE_ACK;
            at = putVarint(f, at, r.stream);
            at = putVarint(f, at, r.next);
            r.ackDue = false;
          } else {
            f[at++] = TAG_MESSAGE;
            at = putVarint(f, at, out.stream);
            at = putVarint(f, at, it.seq);
            f[at++] = it.op;
            at = putVarint(f, at, it.data.length);
            f.set(it.data, at);
            at += it.data.length;
            if (it.sends++) this.stats.resends++;
            it.lastSent = now;
          }
          this.stats.packetsSent++;
        }
        ws.send(f);
      }
    }
  }

  // --- leaving ---------------------------------------------------------------------------------

  /** Leaves the match: closes both connections (with close frames) and stops every timer. */
  leave() {
    if (!this._closed) this._close(1000, 'left');
    return Promise.resolve();
  }

  _shutdown() {
    this._closed = true;
    for (const t of [this._keepAlive, this._tick]) if (t) clearInterval(t);
    if (this._flushTimer) clearTimeout(this._flushTimer);
    if (this._relayTimer) clearTimeout(this._relayTimer);
    this._keepAlive = this._tick = this._flushTimer = this._relayTimer = null;
    for (const ws of [this._sig, this._relay, this._relayPending]) {
      if (!ws) continue;
      try {
        if (ws.readyState === 0 || ws.readyState === 1) ws.close(1000);
      } catch {
        /* already closing */
      }
    }
    this._sig = null;
    this._relay = null;
    this._relayPending = null;
    this.relayConnected = false;
    for (const w of this._startWaiters.splice(0)) w.reject(new RicochetError('closed', 'the match has been left or closed'));
  }

  _close(code, reason) {
    if (this._closed) return;
    this._shutdown();
    this._emit('close', { code, reason });
  }
}
