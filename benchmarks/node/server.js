'use strict';
// Node `ws` server for the benchmark suite: echo on every path, fan-out on /bcast.
// Prints "PORT <n>" once listening; stops on SIGTERM or when stdin closes.
const http = require('http');
const { WebSocketServer, WebSocket } = require('ws');

let bufferutil = false;
let utf8validate = false;
try { require('bufferutil'); bufferutil = true; } catch (e) { /* optional */ }
try { require('utf-8-validate'); utf8validate = true; } catch (e) { /* optional */ }

const server = http.createServer((req, res) => { res.writeHead(426); res.end(); });
const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
const subscribers = new Set();

wss.on('connection', (ws, req) => {
  if (req.url === '/bcast') {
    subscribers.add(ws);
    ws.on('message', (data, isBinary) => {
      // The idiomatic ws fan-out: one send() per client.
      for (const client of subscribers) {
        if (client.readyState === WebSocket.OPEN) client.send(data, { binary: isBinary });
      }
    });
    ws.on('close', () => subscribers.delete(ws));
  } else {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  }
  ws.on('error', () => {});
});

server.listen({ host: '127.0.0.1', port: 0, backlog: 4096 }, () => {
  const info = { bufferutil, utf8validate, ws: require('ws/package.json').version };
  process.stdout.write(`PORT ${server.address().port} ${JSON.stringify(info)}\n`);
});
process.on('SIGTERM', () => process.exit(0));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
