'use strict';

/**
 * A Node `ws` echo server used as a peer by the Python interop tests.
 *
 *   node echo_server.js [--protocols a,b] [--close-code 4000] [--close-reason text]
 *                       [--per-message-deflate JSON]
 *
 * Listens on an ephemeral port on 127.0.0.1 and writes one JSON object per line on
 * stdout:
 *
 *   {"event": "listening", "port": 12345}
 *   {"event": "connection", "id": 1, "protocol": "chat", "headers": {...}, "path": "/x",
 *    "extensions": "permessage-deflate; ..."}
 *   {"event": "close", "id": 1, "code": 1000, "reason": "", "wasClean": true}
 *
 * Every message is echoed with its type (text or binary) preserved, except these text
 * commands:
 *
 *   please-close               close with --close-code / --close-reason
 *   please-close:CODE:REASON   close with CODE and REASON
 *   please-ping:DATA           ping the client with DATA; when the pong arrives, send the
 *                              text "pong-received:" + pong payload
 *
 * With --protocols, the server picks the first subprotocol the client offers that is
 * in the list, and answers with none when nothing matches (the client decides whether
 * that is acceptable). Without it, no subprotocol is ever selected.
 *
 * permessage-deflate is disabled unless --per-message-deflate gives the `perMessageDeflate`
 * option of `ws`'s server as JSON (`true`, or an object such as {"threshold": 0,
 * "serverMaxWindowBits": 10}); "extensions" is the Sec-WebSocket-Extensions value of the
 * 101 response ("" if none). The process exits on SIGTERM or when stdin closes.
 */

const { WebSocketServer } = require('ws');

function parseArgs(argv) {
  const options = {
    protocols: null,
    closeCode: 4000,
    closeReason: 'server says bye',
    perMessageDeflate: false,
  };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    const value = argv[i + 1];
    if (arg === '--protocols') {
      options.protocols = value.split(',').filter((p) => p.length > 0);
      i += 1;
    } else if (arg === '--close-code') {
      options.closeCode = Number(value);
      i += 1;
    } else if (arg === '--close-reason') {
      options.closeReason = value;
      i += 1;
    } else if (arg === '--per-message-deflate') {
      options.perMessageDeflate = JSON.parse(value);
      i += 1;
    } else {
      throw new Error(`unknown argument: ${arg}`);
    }
  }
  return options;
}

function emit(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

const options = parseArgs(process.argv.slice(2));

const serverOptions = {
  host: '127.0.0.1',
  port: 0,
  perMessageDeflate: options.perMessageDeflate,
};
if (options.protocols !== null) {
  serverOptions.handleProtocols = (offered) => {
    for (const protocol of options.protocols) {
      if (offered.has(protocol)) return protocol;
    }
    return false;
  };
} else {
  serverOptions.handleProtocols = () => false;
}

const server = new WebSocketServer(serverOptions);
let nextId = 1;

// The response's Sec-WebSocket-Extensions (ws.extensions only has the names).
const responseExtensions = new WeakMap();
server.on('headers', (headers, request) => {
  const prefix = 'sec-websocket-extensions:';
  const line = headers.find((h) => h.toLowerCase().startsWith(prefix));
  responseExtensions.set(request, line ? line.slice(prefix.length).trim() : '');
});

server.on('listening', () => {
  emit({ event: 'listening', port: server.address().port });
});

server.on('connection', (ws, request) => {
  const id = nextId;
  nextId += 1;
  emit({
    event: 'connection',
    id,
    protocol: ws.protocol || null,
    path: request.url,
    headers: request.headers,
    extensions: responseExtensions.get(request) || '',
  });

  ws.on('message', (data, isBinary) => {
    if (!isBinary) {
      const text = data.toString('utf8');
      if (text === 'please-close') {
        ws.close(options.closeCode, options.closeReason);
        return;
      }
      if (text.startsWith('please-close:')) {
        const [, code, ...reason] = text.split(':');
        ws.close(Number(code), reason.join(':'));
        return;
      }
      if (text.startsWith('please-ping:')) {
        const payload = text.slice('please-ping:'.length);
        ws.once('pong', (pong) => ws.send(`pong-received:${pong.toString('utf8')}`));
        ws.ping(payload);
        return;
      }
    }
    ws.send(data, { binary: isBinary });
  });

  ws.addEventListener('close', (event) => {
    emit({ event: 'close', id, code: event.code, reason: event.reason, wasClean: event.wasClean });
  });

  ws.on('error', (err) => {
    process.stderr.write(`connection ${id}: ${err.message}\n`);
  });
});

function shutdown() {
  for (const client of server.clients) client.terminate();
  server.close(() => process.exit(0));
}

process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
process.stdin.on('end', shutdown);
process.stdin.resume();
