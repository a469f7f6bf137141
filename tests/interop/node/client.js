'use strict';

/**
 * A scripted Node `ws` client used as a peer by the Python interop tests.
 *
 *   node client.js URL [SCENARIO_JSON]
 *
 * The scenario (all keys optional):
 *
 *   {
 *     "protocols": ["chat"],               offered subprotocols
 *     "headers": {"X-Name": "value"},      extra request headers
 *     "messages": [                        sent one by one; each echo is awaited and checked
 *       {"type": "text", "size": 125, "pattern": "ascii"},
 *       {"type": "text", "size": 40, "pattern": "unicode", "fragments": 3},
 *       {"type": "binary", "size": 65536, "fragments": 4},
 *       {"type": "text", "text": "exactly this"}
 *     ],
 *     "ping": "payload",                   ping after the messages, expect the same pong
 *     "send": ["text", ...],               texts sent after the ping, no echo expected
 *     "close": {"code": 4000, "reason": "bye"},   close after that (omit: wait for the
 *                                                 server to close)
 *     "timeout": 10000,                    milliseconds before giving up
 *     "perMessageDeflate": {"threshold": 0}   ws's perMessageDeflate option (default false)
 *   }
 *
 * "size" counts bytes for binary messages and characters (code points) for text.
 * Patterns: "ascii" (a..z), "unicode" (mixes 1-, 2-, 3- and 4-byte UTF-8 characters),
 * "zeros" (binary only) and the default for binary, "bytes" (i * 31 + 7 mod 256).
 * A fragmented message is split into that many frames of about equal byte length, so
 * a text message may be split inside a UTF-8 sequence.
 *
 * Prints one JSON report on stdout and exits 0 if every check passed, 1 otherwise:
 *
 *   {"ok": true, "errors": [], "opened": true, "protocol": "chat", "extensions": "",
 *    "messages": [{"type": "text", "size": 125, "bytes": 125, "echoed": true}],
 *    "pong": {"received": true, "data": "payload"},
 *    "close": {"code": 4000, "reason": "bye", "wasClean": true}}
 *
 * permessage-deflate is disabled unless the scenario gives "perMessageDeflate"; the report's
 * "extensions" is the Sec-WebSocket-Extensions value of the 101 response ("" if none).
 */

const WebSocket = require('ws');

const UNICODE_CHARS = ['a', 'é', 'ß', '✓', '€', '😀', 'z', '𝄞'];

function makeText(size, pattern) {
  const chars = [];
  for (let i = 0; i < size; i += 1) {
    if (pattern === 'unicode') chars.push(UNICODE_CHARS[i % UNICODE_CHARS.length]);
    else chars.push(String.fromCharCode(97 + (i % 26)));
  }
  return chars.join('');
}

function makeBinary(size, pattern) {
  const buf = Buffer.alloc(size);
  if (pattern !== 'zeros') {
    for (let i = 0; i < size; i += 1) buf[i] = (i * 31 + 7) & 0xff;
  }
  return buf;
}

function splitBuffer(buf, parts) {
  const chunks = [];
  const step = Math.ceil(buf.length / parts) || 1;
  for (let i = 0; i < parts; i += 1) {
    chunks.push(buf.subarray(Math.min(i * step, buf.length), Math.min((i + 1) * step, buf.length)));
  }
  return chunks;
}

function sendAsync(ws, data, options) {
  return new Promise((resolve, reject) => {
    ws.send(data, options, (err) => (err ? reject(err) : resolve()));
  });
}

class Inbox {
  constructor(ws) {
    this.queue = [];
    this.waiters = [];
    this.closed = null;
    ws.on('message', (data, isBinary) => this.push({ data, isBinary }));
    ws.on('close', () => {
      this.closed = true;
      for (const waiter of this.waiters.splice(0)) waiter.reject(new Error('connection closed'));
    });
  }

  push(item) {
    const waiter = this.waiters.shift();
    if (waiter) waiter.resolve(item);
    else this.queue.push(item);
  }

  next() {
    if (this.queue.length > 0) return Promise.resolve(this.queue.shift());
    if (this.closed) return Promise.reject(new Error('connection closed'));
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }
}

async function run(url, scenario, report) {
  const options = {
    perMessageDeflate: scenario.perMessageDeflate === undefined ? false : scenario.perMessageDeflate,
    maxPayload: 256 * 1024 * 1024,
  };
  if (scenario.headers) options.headers = scenario.headers;
  const ws = new WebSocket(url, scenario.protocols || [], options);
  const inbox = new Inbox(ws);
  ws.once('upgrade', (response) => {
    report.extensions = response.headers['sec-websocket-extensions'] || '';
  });

  const closed = new Promise((resolve) => {
    ws.addEventListener('close', (event) => {
      report.close = { code: event.code, reason: event.reason, wasClean: event.wasClean };
      resolve();
    });
  });
  ws.on('error', (err) => report.errors.push(`error: ${err.message}`));

  const opened = await new Promise((resolve) => {
    ws.once('open', () => resolve(true));
    ws.once('close', () => resolve(false));
  });
  report.opened = opened;
  if (!opened) {
    report.errors.push('connection did not open');
    return;
  }
  report.protocol = ws.protocol || null;

  for (const spec of scenario.messages || []) {
    const binary = spec.type === 'binary';
    let payload;
    if (binary) payload = makeBinary(spec.size, spec.pattern);
    else if (spec.text !== undefined) payload = Buffer.from(spec.text, 'utf8');
    else payload = Buffer.from(makeText(spec.size, spec.pattern), 'utf8');
    const entry = { type: spec.type, size: spec.size, bytes: payload.length, echoed: false };
    report.messages.push(entry);

    const fragments = spec.fragments || 1;
    if (fragments > 1) {
      const chunks = splitBuffer(payload, fragments);
      for (let i = 0; i < chunks.length; i += 1) {
        await sendAsync(ws, chunks[i], { binary, fin: i === chunks.length - 1 });
      }
    } else {
      await sendAsync(ws, payload, { binary });
    }

    const echo = await inbox.next();
    if (echo.isBinary !== binary) {
      report.errors.push(`message ${report.messages.length - 1}: type changed`);
    } else if (!Buffer.from(echo.data).equals(payload)) {
      report.errors.push(
        `message ${report.messages.length - 1}: echo differs (${echo.data.length} bytes)`,
      );
    } else {
      entry.echoed = true;
    }
  }

  if (scenario.ping !== undefined) {
    report.pong = { received: false, data: null };
    const pong = new Promise((resolve) => ws.once('pong', resolve));
    ws.ping(scenario.ping);
    const data = await pong;
    report.pong = { received: true, data: data.toString('utf8') };
    if (report.pong.data !== scenario.ping) report.errors.push('pong payload differs');
  }

  for (const text of scenario.send || []) await sendAsync(ws, text, { binary: false });

  if (scenario.close) ws.close(scenario.close.code, scenario.close.reason || '');
  await closed;
}

async function main() {
  const [url, scenarioJson] = process.argv.slice(2);
  const scenario = scenarioJson ? JSON.parse(scenarioJson) : {};
  const report = { ok: false, errors: [], opened: false, protocol: null, messages: [] };
  report.extensions = '';
  report.pong = null;
  report.close = null;

  let timer;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(() => {
      report.errors.push('timed out');
      resolve();
    }, scenario.timeout || 10000);
  });
  try {
    await Promise.race([run(url, scenario, report), timeout]);
  } catch (err) {
    report.errors.push(`exception: ${err.message}`);
  } finally {
    clearTimeout(timer);
  }
  report.ok = report.errors.length === 0;
  process.stdout.write(`${JSON.stringify(report)}\n`, () => process.exit(report.ok ? 0 : 1));
}

main();
