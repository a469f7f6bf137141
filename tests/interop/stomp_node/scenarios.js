// @stomp/stompjs scenarios against a STOMP broker over WebSocket.
//
//   node scenarios.js URL SCENARIO
//
// Prints one JSON line: {"ok": true, ...facts} or {"ok": false, "error": "..."}.
// Every scenario ends by itself; a global timer gives up after TIMEOUT_MS. The facts
// are checked by tests/interop/test_stompjs.py; wire-level facts (escaping, text vs
// binary messages) come from a WebSocket wrapper that records raw traffic.
'use strict';

const { Client } = require('@stomp/stompjs');
const WebSocket = require('ws');
const crypto = require('crypto');

const [url, scenario] = process.argv.slice(2);
const TIMEOUT_MS = Number(process.env.STOMP_SCENARIO_TIMEOUT_MS || 20000);

function report(result) {
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(result.ok ? 0 : 1);
}

setTimeout(() => report({ ok: false, error: `scenario ${scenario} timed out` }), TIMEOUT_MS);
process.on('unhandledRejection', (e) => report({ ok: false, error: String(e && e.stack || e) }));
process.on('uncaughtException', (e) => report({ ok: false, error: String(e && e.stack || e) }));

// Raw traffic of every socket, for checks on the wire.
const wire = { sent: [], received: [] };

function recordingSocket(address, protocols) {
  const sock = new WebSocket(address, protocols);
  const send = sock.send.bind(sock);
  sock.send = (data, ...rest) => {
    wire.sent.push(typeof data === 'string' ? { text: data } : { binary: Buffer.from(data).toString('base64') });
    return send(data, ...rest);
  };
  sock.addEventListener('message', (evt) => {
    const data = evt.data;
    wire.received.push(typeof data === 'string' ? { text: data } : { binary: Buffer.from(data).toString('base64') });
  });
  return sock;
}

// A connected client; resolves with it once CONNECTED arrived.
function connect(options = {}) {
  return new Promise((resolve, reject) => {
    const client = new Client({
      brokerURL: url,
      connectHeaders: { host: '/', ...(options.connectHeaders || {}) },
      reconnectDelay: 0,
      heartbeatIncoming: options.heartbeatIncoming ?? 0,
      heartbeatOutgoing: options.heartbeatOutgoing ?? 0,
      webSocketFactory: () => recordingSocket(url, ['v12.stomp', 'v11.stomp', 'v10.stomp']),
      debug: () => {},
    });
    client.closes = [];
    client.errors = [];
    client.onConnect = (frame) => resolve(Object.assign(client, { connectedFrame: frame }));
    client.onStompError = (frame) => {
      client.errors.push({ headers: frame.headers, body: frame.body });
      if (!client.connected) reject(new Error('ERROR: ' + frame.headers.message));
    };
    client.onWebSocketClose = (evt) => client.closes.push(evt.code);
    client.activate();
  });
}

function receipt(client, publish) {
  // Send a frame with a receipt header and resolve when the RECEIPT comes back.
  const id = 'r-' + crypto.randomUUID();
  return new Promise((resolve) => {
    client.watchForReceipt(id, () => resolve(id));
    publish({ receipt: id });
  });
}

function collector() {
  // A subscription callback that records messages and resolves waiters by count.
  const messages = [];
  const waiters = [];
  const callback = (message) => {
    messages.push(message);
    for (const w of waiters.slice()) {
      if (messages.length >= w.count) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(messages.slice(0, w.count));
      }
    }
  };
  callback.messages = messages;
  callback.wait = (count) => new Promise((resolve) => {
    if (messages.length >= count) resolve(messages.slice(0, count));
    else waiters.push({ count, resolve });
  });
  return callback;
}

async function subscribed(client, destination, callback, headers = {}) {
  let sub;
  await receipt(client, (h) => { sub = client.subscribe(destination, callback, { ...h, ...headers }); });
  return sub;
}

async function close(...clients) {
  await Promise.all(clients.map((c) => c.deactivate()));
}

const scenarios = {
  async connect() {
    const c = await connect();
    const headers = c.connectedFrame.headers;
    const protocol = c.webSocket.protocol;
    await close(c);
    return { headers, protocol, closes: c.closes };
  },

  async topics() {
    const subs = await Promise.all([connect(), connect(), connect()]);
    const inboxes = [];
    for (const c of subs) {
      const inbox = collector();
      await subscribed(c, '/topic/js', inbox);
      inboxes.push(inbox);
    }
    const pub = await connect();
    for (let i = 0; i < 5; i++) {
      await receipt(pub, (h) => pub.publish({ destination: '/topic/js', body: `m${i}`, headers: { ...h, 'x-n': String(i) } }));
    }
    const got = await Promise.all(inboxes.map((inbox) => inbox.wait(5)));
    const result = got.map((msgs) => msgs.map((m) => [m.body, m.headers['x-n'], m.headers.subscription, m.headers.destination, !!m.headers['message-id']]));
    await close(pub, ...subs);
    return { received: result };
  },

  async queues() {
    const a = await connect();
    const b = await connect();
    const inboxA = collector();
    const inboxB = collector();
    await subscribed(a, '/queue/js', inboxA);
    await subscribed(b, '/queue/js', inboxB);
    const pub = await connect();
    for (let i = 0; i < 10; i++) {
      await receipt(pub, (h) => pub.publish({ destination: '/queue/js', body: `q${i}`, headers: h }));
    }
    const wait = async () => {
      while (inboxA.messages.length + inboxB.messages.length < 10) {
        await new Promise((r) => setImmediate(r));
      }
    };
    await wait();
    const result = { a: inboxA.messages.map((m) => m.body), b: inboxB.messages.map((m) => m.body) };
    await close(pub, a, b);
    return result;
  },

  async acks() {
    const pub = await connect();
    const send = (dest, body) => receipt(pub, (h) => pub.publish({ destination: dest, body, headers: h }));
    const result = {};

    // auto: no ack header.
    const auto = await connect();
    const autoInbox = collector();
    await subscribed(auto, '/queue/auto', autoInbox, { ack: 'auto' });
    await send('/queue/auto', 'x');
    result.auto = (await autoInbox.wait(1)).map((m) => m.headers.ack === undefined);

    // client-individual: NACK redelivers, ACK settles.
    const ind = await connect();
    const indInbox = collector();
    await subscribed(ind, '/queue/ind', indInbox, { ack: 'client-individual' });
    await send('/queue/ind', 'one');
    await send('/queue/ind', 'two');
    const [one, two] = await indInbox.wait(2);
    await receipt(ind, (h) => two.ack(h));
    await receipt(ind, (h) => one.nack(h));
    const [, , again] = await indInbox.wait(3);
    await receipt(ind, (h) => again.ack(h));
    result.individual = [one.body, two.body, again.body, again.headers.redelivered, !!one.headers.ack];

    // client (cumulative): ACK of the 2nd settles the 1st; leaving hands the 3rd over.
    const cum = await connect();
    const cumInbox = collector();
    await subscribed(cum, '/queue/cum', cumInbox, { ack: 'client' });
    for (const body of ['c1', 'c2', 'c3']) await send('/queue/cum', body);
    const msgs = await cumInbox.wait(3);
    await receipt(cum, (h) => msgs[1].ack(h));
    await cum.deactivate();
    const other = await connect();
    const otherInbox = collector();
    await subscribed(other, '/queue/cum', otherInbox, { ack: 'client-individual' });
    const [redelivered] = await otherInbox.wait(1);
    await receipt(other, (h) => redelivered.ack(h));
    result.cumulative = [redelivered.body, redelivered.headers.redelivered];
    await close(pub, auto, ind, other);
    return result;
  },

  async receipts() {
    const c = await connect();
    const ids = [];
    let sub;
    ids.push(await receipt(c, (h) => { sub = c.subscribe('/topic/r', () => {}, h); }));
    ids.push(await receipt(c, (h) => c.publish({ destination: '/topic/r', body: 'x', headers: h })));
    ids.push(await receipt(c, (h) => sub.unsubscribe(h)));
    // DISCONNECT: stompjs asks for a receipt and closes when it comes.
    await c.deactivate();
    const disconnectSent = wire.sent.some((f) => f.text && f.text.startsWith('DISCONNECT\nreceipt:'));
    const disconnectReceipt = wire.received.some((f) => f.text && /^RECEIPT\nreceipt-id:close-/.test(f.text));
    return { ids: ids.length, disconnectSent, disconnectReceipt, closes: c.closes };
  },

  async transactions() {
    const c = await connect();
    const inbox = collector();
    await subscribed(c, '/topic/tx', inbox);
    const t1 = c.begin();
    c.publish({ destination: '/topic/tx', body: 'aborted', headers: { transaction: t1.id } });
    t1.abort();
    const t2 = c.begin();
    c.publish({ destination: '/topic/tx', body: 'c1', headers: { transaction: t2.id } });
    c.publish({ destination: '/topic/tx', body: 'c2', headers: { transaction: t2.id } });
    t2.commit(); // stompjs takes no receipt on COMMIT: the next frame's receipt orders it
    await receipt(c, (h) => c.publish({ destination: '/topic/tx', body: 'after', headers: h }));
    const got = await inbox.wait(3);
    // Transactional ACK: aborted leaves the message unacked, committed settles it.
    const q = collector();
    await subscribed(c, '/queue/txack', q, { ack: 'client-individual' });
    await receipt(c, (h) => c.publish({ destination: '/queue/txack', body: 'm', headers: h }));
    const [m] = await q.wait(1);
    const t3 = c.begin();
    m.ack({ transaction: t3.id });
    t3.abort();
    const t4 = c.begin();
    m.ack({ transaction: t4.id });
    t4.commit();
    await receipt(c, (h) => c.publish({ destination: '/topic/none', body: '', headers: h }));
    await close(c);
    return { bodies: got.map((m) => m.body), errors: c.errors };
  },

  async escaping() {
    const c = await connect();
    const inbox = collector();
    await subscribed(c, '/topic/esc', inbox);
    const value = 'a:b\\c\nd\re';
    await receipt(c, (h) => c.publish({ destination: '/topic/esc', body: 'e', headers: { ...h, 'x-esc': value, 'x:colon': 'v' } }));
    const [m] = await inbox.wait(1);
    const sendFrame = wire.sent.find((f) => f.text && f.text.startsWith('SEND\n')).text;
    const message = wire.received.find((f) => f.text && f.text.startsWith('MESSAGE\n')).text;
    await close(c);
    return { sent: sendFrame, received: message, decoded: m.headers['x-esc'] };
  },

  async binary() {
    const c = await connect();
    const inbox = collector();
    await subscribed(c, '/queue/bin', inbox);
    const body = Buffer.from([0, 1, 2, 0, 255, 254, 0xc3, 0x28, 0, 10, 0]);
    await receipt(c, (h) => c.publish({ destination: '/queue/bin', binaryBody: new Uint8Array(body), headers: { ...h, 'content-type': 'application/octet-stream' } }));
    const [m] = await inbox.wait(1);
    const frames = wire.received.filter((f) => (f.binary ? Buffer.from(f.binary, 'base64').toString('latin1') : f.text).startsWith('MESSAGE'));
    await close(c);
    return {
      equal: Buffer.compare(Buffer.from(m.binaryBody), body) === 0,
      length: m.binaryBody.length,
      asBinaryMessage: frames.length === 1 && frames[0].binary !== undefined,
    };
  },

  async large() {
    const c = await connect();
    const inbox = collector();
    await subscribed(c, '/queue/large', inbox);
    const text = 'abcdefghij'.repeat(104858).slice(0, 1 << 20);
    const bin = crypto.randomBytes(1 << 20);
    await receipt(c, (h) => c.publish({ destination: '/queue/large', body: text, headers: h }));
    await receipt(c, (h) => c.publish({ destination: '/queue/large', binaryBody: new Uint8Array(bin), headers: h }));
    const [t, b] = await inbox.wait(2);
    await close(c);
    return {
      text: t.body.length === text.length && t.body === text,
      binary: Buffer.compare(Buffer.from(b.binaryBody), bin) === 0,
      sizes: [t.body.length, b.binaryBody.length],
    };
  },

  async heartbeats() {
    const idleMs = Number(process.env.STOMP_IDLE_MS || 1500);
    const c = await connect({ heartbeatIncoming: 100, heartbeatOutgoing: 100 });
    const inbox = collector();
    await subscribed(c, '/topic/hb', inbox);
    const before = wire.received.filter((f) => f.text === '\n').length;
    await new Promise((r) => setTimeout(r, idleMs)); // the idle period under test
    const beatsIn = wire.received.filter((f) => f.text === '\n').length - before;
    const beatsOut = wire.sent.filter((f) => f.text === '\n').length;
    await receipt(c, (h) => c.publish({ destination: '/topic/hb', body: 'still here', headers: h }));
    const [m] = await inbox.wait(1);
    await close(c);
    return { beatsIn, beatsOut, body: m.body, closes: c.closes, heartBeat: c.connectedFrame.headers['heart-beat'] };
  },

  async malformed() {
    const bystander = await connect();
    const inbox = collector();
    await subscribed(bystander, '/topic/mal', inbox);
    const c = await connect();
    const closed = new Promise((resolve) => { c.onWebSocketClose = (evt) => resolve(evt.code); });
    const errored = new Promise((resolve) => {
      c.onStompError = (frame) => resolve({ headers: frame.headers, body: frame.body });
    });
    c.webSocket.send('SEND\ndestination:/topic/mal\nbad:\\tescape\n\nx\0');
    const error = await errored;
    const code = await closed;
    c.deactivate();
    await receipt(bystander, (h) => bystander.publish({ destination: '/topic/mal', body: 'ok', headers: h }));
    const [m] = await inbox.wait(1);
    await close(bystander);
    return { error, code, bystander: m.body };
  },
};

(async () => {
  const run = scenarios[scenario];
  if (!run) report({ ok: false, error: `unknown scenario ${scenario}` });
  const facts = await run();
  report({ ok: true, ...facts });
})();
