'use strict';
// Benchmark peer: rpc-websockets' JSON-RPC 2.0 server with one method, multiply.
// Run as `node server.js --port 0 [--compression]`; prints `listening on ws://HOST:PORT/`.
// The endpoint is `/`: rpc-websockets keys its methods by path, and registers them on `/`.
// The harness copies this file next to the node_modules it installs (benchmarks/.node/).

const { Server } = require('rpc-websockets');

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
};
const host = option('--host', '127.0.0.1');
const port = Number(option('--port', '0'));
// ws skips messages under 1 KiB by default (threshold 1024); 0 compresses every
// message, as the Python servers do, so the deflate scenario compares like with like.
const perMessageDeflate = args.includes('--compression') ? { threshold: 0 } : false;

const server = new Server({ host, port, perMessageDeflate });
server.register('multiply', (params) => params[0] * params[1]);
server.on('listening', () => {
  console.log(`listening on ws://${host}:${server.wss.address().port}/`);
});
server.on('error', (error) => {
  console.error(error);
  process.exit(1);
});

const stop = () => {
  for (const client of server.wss.clients) client.terminate();
  server.close().finally(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
