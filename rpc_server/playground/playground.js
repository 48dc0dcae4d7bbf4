// The playground: connects back to the server that served this page, asks it
// rpc.discover for its OpenRPC document, and builds a form for each tool from
// its params' JSON Schemas. No framework, no build step, nothing fetched from
// elsewhere: it must work offline. Server text is only ever set as textContent.
"use strict";

const MAX_RAW = 300; // messages kept in the raw panel
const LONG_RAW = 240; // characters past which a message is folded (rpc.discover's answer is long)
const MAX_EVENTS = 300; // events kept in the event log

const $ = (id) => document.getElementById(id);

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key in node) node[key] = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function trimList(list, max) {
  while (list.children.length > max) list.firstElementChild.remove();
}

// -- the JSON-RPC connection ---------------------------------------------------

class Connection {
  constructor(url, handlers) {
    this.url = url;
    this.handlers = handlers;
    this.nextId = 1;
    this.pending = new Map(); // id -> {resolve, onPart, onProgress}
    this.socket = new WebSocket(url);
    this.socket.addEventListener("open", () => handlers.open());
    this.socket.addEventListener("close", (event) => this.closed(event));
    this.socket.addEventListener("message", (event) => this.received(event.data));
  }

  send(message) {
    const text = JSON.stringify(message);
    this.handlers.raw("sent", text);
    this.socket.send(text);
  }

  // A call's answer as {result} or {error}; its parts and progress go to the callbacks.
  call(method, params, { stream = false, onPart = null, onProgress = null } = {}) {
    const id = this.nextId++;
    const message = { jsonrpc: "2.0", method, id };
    if (params !== undefined) message.params = params;
    if (stream) message.stream = true;
    const answer = new Promise((resolve) => this.pending.set(id, { resolve, onPart, onProgress }));
    this.send(message);
    return { id, answer };
  }

  notify(method, params) {
    this.send({ jsonrpc: "2.0", method, params });
  }

  received(text) {
    this.handlers.raw("received", text);
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    for (const item of Array.isArray(message) ? message : [message]) this.dispatch(item);
  }

  dispatch(message) {
    if (message === null || typeof message !== "object") return;
    if ("method" in message) {
      const params = message.params || {};
      const call = this.pending.get(params.id);
      if (message.method === "rpc.part" && call && call.onPart) call.onPart(params.value);
      else if (message.method === "rpc.progress" && call && call.onProgress) call.onProgress(params);
      else this.handlers.notification(message.method, params);
      return;
    }
    const call = this.pending.get(message.id);
    if (!call) return;
    this.pending.delete(message.id);
    call.resolve("error" in message ? { error: message.error } : { result: message.result });
  }

  closed(event) {
    for (const call of this.pending.values()) {
      call.resolve({ error: { code: "closed", message: "the connection closed before the answer" } });
    }
    this.pending.clear();
    this.handlers.close(event);
  }

  close() {
    this.socket.close(1000, "reconnecting");
  }
}

// -- forms from JSON Schema -------------------------------------------------------

function typeText(schema) {
  if (!schema || typeof schema !== "object") return "any";
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  if (Array.isArray(schema.type)) return schema.type.join(" | ");
  if (schema.type === "array" && schema.items && !Array.isArray(schema.items)) {
    return `array of ${typeText(schema.items)}`;
  }
  if (schema.type) return schema.type;
  if (schema.anyOf) return schema.anyOf.map(typeText).join(" | ");
  return "any";
}

// How a param is edited: number, integer, string, boolean, enum, or JSON text.
function kindOf(param) {
  const schema = param.schema || {};
  if (param["x-variadic"]) return "json";
  if (Array.isArray(schema.enum)) return "enum";
  if (["number", "integer", "string", "boolean"].includes(schema.type)) return schema.type;
  return "json";
}

function fieldFor(param, prefix) {
  const schema = param.schema || {};
  const kind = kindOf(param);
  const id = `${prefix}-${param.name}`;
  let input;
  if (kind === "boolean") {
    input = el("input", { type: "checkbox", id, name: param.name });
    input.checked = schema.default === true;
  } else if (kind === "enum") {
    input = el("select", { id, name: param.name });
    if (!param.required) input.append(el("option", { value: "", textContent: "(default)" }));
    schema.enum.forEach((value, i) => input.append(el("option", { value: String(i), textContent: JSON.stringify(value) })));
  } else if (kind === "json") {
    input = el("textarea", { id, name: param.name, spellcheck: false });
    input.placeholder = param["x-variadic"] ? "[1, 2, 3]  (a JSON array)" : "JSON";
    if ("default" in schema) input.placeholder = `default: ${JSON.stringify(schema.default)}`;
  } else {
    input = el("input", { type: kind === "string" ? "text" : "number", id, name: param.name });
    if (kind === "integer") input.step = "1";
    if (kind === "number") input.step = "any";
    if (typeof schema.minimum === "number") input.min = String(schema.minimum);
    if (typeof schema.maximum === "number") input.max = String(schema.maximum);
    if ("default" in schema) input.placeholder = `default: ${JSON.stringify(schema.default)}`;
  }
  input.dataset.kind = kind;
  const label = el(
    "label",
    { htmlFor: id },
    param.name,
    " ",
    el("span", { class: "type", textContent: `(${param["x-variadic"] ? `any number of ${typeText(schema)}` : typeText(schema)})` }),
    param.required ? el("span", { class: "required", title: "required", textContent: " *" }) : null,
  );
  const help = param.description || schema.description;
  return el("div", { class: "field" }, label, help ? el("p", { class: "help", textContent: help }) : null, input);
}

// The value typed for a param, or undefined when left empty. Throws on bad JSON.
function valueOf(param, input) {
  const kind = input.dataset.kind;
  if (kind === "boolean") return input.checked;
  if (kind === "enum") return input.value === "" ? undefined : param.schema.enum[Number(input.value)];
  const text = input.value.trim();
  if (text === "") return undefined;
  if (kind === "number" || kind === "integer") return Number(text);
  if (kind === "string") return input.value;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`${param.name}: not JSON (${err.message})`);
  }
}

// The params member for a method or topic, by name unless it takes them by position only.
function paramsFrom(spec, form) {
  const values = spec.params.map((param) => [param, valueOf(param, form.elements.namedItem(param.name))]);
  if (spec.paramStructure === "by-position") {
    const list = [];
    for (const [param, value] of values) {
      if (value === undefined) break;
      if (param["x-variadic"]) {
        if (!Array.isArray(value)) throw new Error(`${param.name}: give a JSON array`);
        list.push(...value);
      } else {
        list.push(value);
      }
    }
    return list;
  }
  const named = {};
  for (const [param, value] of values) if (value !== undefined) named[param.name] = value;
  return named;
}

// -- the page ------------------------------------------------------------------------

const state = { connection: null, document: null, current: null, running: null, subscriptions: new Map() };

function endpoint() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const token = $("token").value.trim();
  const query = token ? `?access_token=${encodeURIComponent(token)}` : "";
  return `${scheme}//${location.host}/ws${query}`;
}

function setStatus(text, kind) {
  const status = $("status");
  status.textContent = text;
  status.className = kind || "";
}

function logRaw(direction, text) {
  const raw = $("raw");
  const item = el("li", { class: direction });
  if (text.length > LONG_RAW) {
    const summary = el("summary", { textContent: `${text.slice(0, LONG_RAW)}… (${text.length} characters)` });
    item.append(el("details", {}, summary, el("pre", { textContent: text })));
  } else {
    item.textContent = text;
  }
  raw.append(item);
  trimList(raw, MAX_RAW);
  raw.scrollTop = raw.scrollHeight;
}

function connect() {
  if (state.connection) state.connection.close();
  state.subscriptions.clear();
  renderSubscriptions();
  const url = endpoint();
  setStatus("connecting…");
  const connection = new Connection(url, {
    open: () => discover(connection),
    close: (event) => {
      if (state.connection !== connection) return;
      // A refused upgrade shows as 1006 whatever the server said (browsers hide the HTTP status).
      const why = event.code === 1006
        ? "could not connect: a wrong or missing access token, or this page's origin is not allowed (--allowed-origin)"
        : `closed (${event.code}${event.reason ? `: ${event.reason}` : ""})`;
      setStatus(why, "bad");
      $("call").disabled = true;
    },
    raw: logRaw,
    notification: onNotification,
  });
  state.connection = connection;
}

async function discover(connection) {
  setStatus(`connected to ${connection.url.split("?")[0]}`, "ok");
  const { answer } = connection.call("rpc.discover");
  const outcome = await answer;
  if (outcome.error) {
    setStatus(`rpc.discover failed: ${outcome.error.message}`, "bad");
    return;
  }
  state.document = outcome.result;
  renderLists();
}

function listItem(kind, spec) {
  const button = el(
    "button",
    { type: "button", dataset: { [kind]: spec.name } },
    el("span", { class: "name", textContent: spec.name }),
    spec.summary ? el("span", { class: "summary", textContent: spec.summary }) : null,
  );
  button.addEventListener("click", () => (kind === "tool" ? showTool(spec) : showTopic(spec)));
  return el("li", {}, button);
}

function renderLists() {
  const tools = state.document.methods.filter((m) => !m.name.startsWith("rpc."));
  $("tools").replaceChildren(...tools.map((m) => listItem("tool", m)));
  $("topics").replaceChildren(...(state.document["x-topics"] || []).map((t) => listItem("topic", t)));
  if (!tools.length) $("tools").append(el("li", { textContent: "(none you may call)" }));
}

function markCurrent(kind, name) {
  for (const button of document.querySelectorAll("nav li button")) {
    button.setAttribute("aria-current", String(button.dataset[kind] === name));
  }
}

// Show the form of a tool ("tool") or a topic ("topic") in the middle panel.
function showForm(kind, spec) {
  markCurrent(kind, spec.name);
  $("hint").hidden = true;
  $("tool-view").hidden = kind !== "tool";
  $("topic-view").hidden = kind !== "topic";
  $(`${kind}-name`).textContent = spec.name;
  $(`${kind}-description`).textContent = spec.description || spec.summary || "";
  $(`${kind}-fields`).replaceChildren(...spec.params.map((p) => fieldFor(p, kind === "tool" ? "param" : "topic")));
}

function showTool(method) {
  state.current = method;
  showForm("tool", method);
  $("outcome").hidden = true;
  $("call").disabled = !state.connection || !!state.running;
}

function showTopic(topic) {
  state.currentTopic = topic;
  showForm("topic", topic);
  $("topic-error").textContent = "";
}

function resetOutcome(method) {
  $("outcome").hidden = false;
  $("parts").replaceChildren();
  $("result-box").hidden = true;
  $("error").hidden = true;
  const bar = $("progress");
  const measured = !!method["x-stream"] || !!method["x-progress"];
  bar.hidden = !measured;
  bar.max = 1;
  bar.removeAttribute("value"); // indeterminate until something is known
  $("progress-text").textContent = "";
}

function showError(error) {
  $("error").hidden = false;
  $("error-code").textContent = String(error.code);
  $("error-message").textContent = error.message || "";
  $("error-data").textContent = error.data === undefined ? "" : JSON.stringify(error.data, null, 2);
  $("error-data").hidden = error.data === undefined;
}

async function callTool(event) {
  event.preventDefault();
  const method = state.current;
  if (!method || !state.connection || state.running) return;
  let params;
  try {
    params = paramsFrom(method, $("tool-form"));
  } catch (err) {
    resetOutcome(method);
    showError({ code: "input", message: err.message });
    return;
  }
  resetOutcome(method);
  const bar = $("progress");
  let parts = 0;
  const streamed = !!method["x-stream"] || !!method["x-progress"];
  const call = state.connection.call(method.name, params, {
    stream: streamed,
    onPart: (value) => {
      parts += 1;
      $("parts").append(el("li", { textContent: JSON.stringify(value) }));
      $("progress-text").textContent = `${parts} part${parts === 1 ? "" : "s"}`;
    },
    onProgress: (p) => {
      if (typeof p.total === "number" && p.total > 0) {
        bar.max = p.total;
        bar.value = Math.min(p.done, p.total);
      }
      const of = typeof p.total === "number" ? ` of ${p.total}` : "";
      $("progress-text").textContent = `${p.done}${of}${p.message ? `: ${p.message}` : ""}`;
    },
  });
  state.running = { id: call.id, method };
  $("call").disabled = true;
  $("cancel").disabled = false;
  const outcome = await call.answer;
  state.running = null;
  $("cancel").disabled = true;
  $("call").disabled = false;
  if (outcome.error) {
    showError(outcome.error);
    return;
  }
  if (streamed) {
    bar.max = 1;
    bar.value = 1; // done: whatever was measured, it is all there
  }
  $("result-box").hidden = false;
  $("result").textContent = JSON.stringify(outcome.result, null, 2);
  if (method["x-stream"]) $("progress-text").textContent = `done: ${parts} part${parts === 1 ? "" : "s"}`;
}

function cancelCall() {
  if (state.running && state.connection) state.connection.notify("rpc.cancel", { id: state.running.id });
}

// -- topics ------------------------------------------------------------------------

async function subscribe(event) {
  event.preventDefault();
  const topic = state.currentTopic;
  if (!topic || !state.connection) return;
  $("topic-error").textContent = "";
  let params;
  try {
    params = paramsFrom(topic, $("topic-form"));
  } catch (err) {
    $("topic-error").textContent = err.message;
    return;
  }
  const args = { topic: topic.name };
  if (Array.isArray(params) ? params.length : Object.keys(params).length) args.params = params;
  const { answer } = state.connection.call("rpc.subscribe", args);
  const outcome = await answer;
  if (outcome.error) {
    const data = outcome.error.data === undefined ? "" : `: ${JSON.stringify(outcome.error.data)}`;
    $("topic-error").textContent = `error ${outcome.error.code}: ${outcome.error.message}${data}`;
    return;
  }
  state.subscriptions.set(outcome.result, topic.name);
  renderSubscriptions();
}

async function unsubscribe(id) {
  if (!state.connection) return;
  await state.connection.call("rpc.unsubscribe", { subscription: id }).answer;
  state.subscriptions.delete(id);
  renderSubscriptions();
}

function renderSubscriptions() {
  const items = [...state.subscriptions].map(([id, topic]) => {
    const stop = el("button", { type: "button", textContent: "Unsubscribe", dataset: { subscription: id } });
    stop.addEventListener("click", () => unsubscribe(id));
    return el("li", {}, `${topic} #${id}`, stop);
  });
  $("subscriptions").replaceChildren(...items);
}

function logEvent(text) {
  const events = $("events");
  events.append(el("li", { textContent: text }));
  trimList(events, MAX_EVENTS);
  events.scrollTop = events.scrollHeight;
}

function onNotification(method, params) {
  if (method === "rpc.event") {
    const dropped = params.dropped ? ` (${params.dropped} dropped before)` : "";
    logEvent(`${params.topic} #${params.subscription}: ${JSON.stringify(params.event)}${dropped}`);
  } else if (method === "rpc.unsubscribed") {
    state.subscriptions.delete(params.subscription);
    renderSubscriptions();
    logEvent(`#${params.subscription} ended: ${params.reason}`);
  }
}

// -- start -----------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("connect-form").addEventListener("submit", (event) => {
    event.preventDefault();
    connect();
  });
  $("tool-form").addEventListener("submit", callTool);
  $("cancel").addEventListener("click", cancelCall);
  $("topic-form").addEventListener("submit", subscribe);
  $("clear-raw").addEventListener("click", () => $("raw").replaceChildren());
  connect();
});
