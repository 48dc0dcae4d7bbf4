// A JSON-RPC 2.0 server built on the npm package rpc-websockets, for the client's tests.
// Prints "listening on ws://127.0.0.1:PORT/" once ready; exits when stdin closes or on SIGTERM,
// so it never outlives the test that started it.
"use strict";
const { Server } = require("rpc-websockets");

const server = new Server({ host: "127.0.0.1", port: Number(process.argv[2] || 0) });

// rpc-websockets hands a method its params as sent: an array or an object.
const two = (params, x, y) => (Array.isArray(params) ? params : [params[x], params[y]]);

server.register("multiply", (params) => {
  const [a, b] = two(params, "a", "b");
  return a * b;
});
server.register("subtract", (params) => {
  const [minuend, subtrahend] = two(params, "minuend", "subtrahend");
  return minuend - subtrahend;
});
// The specification's other example methods (section 7), for the conformance kit (tests/rpc_server/conformance/).
server.register("sum", (params) => Object.values(params ?? []).reduce((a, b) => a + b, 0));
server.register("get_data", () => ["hello", 5]);
for (const name of ["update", "notify_hello", "notify_sum"]) {
  server.register(name, () => null);
}
server.register("echo", (params) => (params === undefined ? null : params));
server.register("sleep", async (params) => {
  const [seconds, value] = two(params, "seconds", "value");
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  return value === undefined ? null : value;
});
// A thrown Error becomes code -32000, message "Error", data its message.
server.register("fail", () => {
  throw new Error("it failed on purpose");
});
// A thrown plain object is sent as the error object itself.
server.register("fail_with_code", () => {
  throw { code: 4001, message: "No values", data: "give at least one number" };
});
// Returns undefined: the response then has neither "result" nor "error" (not JSON-RPC 2.0).
server.register("nothing", () => undefined);

server.on("listening", () => {
  const { port } = server.wss.address();
  console.log(`listening on ws://127.0.0.1:${port}/`);
});

function stop() {
  server.close().then(() => process.exit(0));
}
process.on("SIGTERM", stop);
process.stdin.on("end", stop);
process.stdin.resume();
