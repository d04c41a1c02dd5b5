// A long-lived driver for the official SignalR JS client (@microsoft/signalr), steered by the
// Python tests over stdin/stdout so one test can hold many connections (several users, two
// devices of one user, other tenants) and interleave invocations with assertions.
//
// Run with cwd anywhere; the client is resolved from tests/interop/node_modules (owned by the
// interop tests, used read-only here).
//
// Protocol: one JSON object per line.
//   stdin  (commands): {"id": n, "op": "connect" | "invoke" | "send" | "stop" | "state" | "exit", ...}
//     connect {name, url, tokens?: [first, ...later], transport?, protocol?, reconnect?: bool | [ms...],
//              targets?: [target...], instances?: [base...], rotate?: bool, failover?: [base...],
//              stateful?: bool}
//              accessTokenFactory returns tokens[0] until start() has resolved and the last token
//              afterwards (fresh credentials for reconnects); no tokens: no factory at all.
//     invoke  {name, method, args}      -> the hub method's result
//     send    {name, method, args}      -> null once sent (no completion awaited)
//     drop    {name}                     -> null (its WebSocket destroyed without a close frame)
//     stop    {name}                     -> null
//     state   {name}                     -> {state, connectionId}
//   stdout (replies):  {"reply": n, "ok": true, "value": ...} | {"reply": n, "ok": false, "error": "...",
//                        "statusCode": n | null, "errorType": "..."}
//   stdout (events):   {"event": "message", "conn": name, "target": t, "args": [...]}
//                      {"event": "reconnecting" | "reconnected" | "close", "conn": name, "error"?, "connectionId"?}
//                      {"event": "failover", "conn": name, "to": base}   (a `failover` connection moved on)
//                      {"event": "socket", "conn": name, "base": base}   (an `instances` WebSocket opened)
// Client logs go to stderr (HERO_INTEROP_LOG=debug for a trace). End of stdin stops every
// connection and exits, so the process never outlives the test.

import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, "..", "..", "interop", "package.json"));
const signalR = require("@microsoft/signalr");
const { MessagePackHubProtocol } = require("@microsoft/signalr-protocol-msgpack");

const LOG_LEVEL = process.env.HERO_INTEROP_LOG === "debug" ? signalR.LogLevel.Trace : signalR.LogLevel.Critical;
const logger = {
    log(level, message) {
        if (level >= LOG_LEVEL) {
            process.stderr.write(`[${new Date().toISOString()}] ${signalR.LogLevel[level]}: ${message}\n`);
        }
    },
};

const connections = new Map();

function emit(object) {
    process.stdout.write(JSON.stringify(object) + "\n");
}

function errorText(error) {
    if (error === undefined || error === null) {
        return null;
    }
    return error instanceof Error ? error.message : String(error);
}

function get(name) {
    const connection = connections.get(name);
    if (!connection) {
        throw new Error(`no connection named ${name}`);
    }
    return connection;
}

// Every request and socket of a connection goes to a randomly chosen instance: the client's
// HTTP requests (negotiate, each poll, each send, the DELETE), its EventSource and its
// WebSocket. This is a load balancer without affinity, inside the client. With
// `negotiateOn`, the negotiate request goes there instead and every other one to `instances`.
// With `rotate`, each new WebSocket goes to the instance after the previous socket's (so a
// stateful reconnect always lands on another instance than the dropped socket's); a "socket"
// event names the instance each WebSocket went to.
function scatter(name, instances, negotiateOn, rotate) {
    let next = 0;
    const pick = (url) => {
        const target = new URL(url);
        const negotiating = negotiateOn && target.pathname.endsWith("/negotiate");
        const socket = target.protocol.startsWith("ws");
        let base;
        if (negotiating) {
            base = negotiateOn;
        } else if (socket && rotate) {
            base = instances[next % instances.length];
            next += 1;
        } else {
            base = instances[Math.floor(Math.random() * instances.length)];
        }
        if (socket) {
            emit({ event: "socket", conn: name, base });
        }
        const chosen = new URL(base);
        target.protocol = target.protocol.startsWith("ws") ? chosen.protocol.replace("http", "ws") : chosen.protocol;
        target.host = chosen.host;
        return target.toString();
    };
    const inner = new signalR.DefaultHttpClient(logger);
    class ScatteringHttpClient extends signalR.HttpClient {
        send(request) {
            return inner.send({ ...request, url: pick(request.url) });
        }
        getCookieString(url) {
            return inner.getCookieString(url);
        }
    }
    const BaseEventSource = require("eventsource");
    class ScatteringEventSource extends BaseEventSource {
        constructor(url, init) {
            super(pick(url), init);
        }
    }
    const BaseWebSocket = require("ws");
    class ScatteringWebSocket extends BaseWebSocket {
        constructor(url, protocols, init) {
            super(pick(url), protocols, init);
        }
    }
    return { httpClient: new ScatteringHttpClient(), EventSource: ScatteringEventSource, WebSocket: ScatteringWebSocket };
}

// Sticky failover, the client's list of instances: everything goes to the current instance
// (the first at start); an HTTP request that cannot reach it at all (refused, reset: not an
// HTTP status) moves the connection to the next instance and is sent again there. A
// reconnect's negotiate therefore lands on a live instance, and its WebSocket, EventSource
// and polls follow it there.
function failover(name, instances) {
    let current = 0;
    const pick = (url) => {
        const target = new URL(url);
        const chosen = new URL(instances[current]);
        target.protocol = target.protocol.startsWith("ws") ? chosen.protocol.replace("http", "ws") : chosen.protocol;
        target.host = chosen.host;
        return target.toString();
    };
    const unreachable = (error) =>
        !(error instanceof signalR.HttpError || error instanceof signalR.AbortError || error instanceof signalR.TimeoutError);
    const inner = new signalR.DefaultHttpClient(logger);
    class FailoverHttpClient extends signalR.HttpClient {
        async send(request) {
            for (let tried = 1; ; tried++) {
                const at = current;
                try {
                    return await inner.send({ ...request, url: pick(request.url) });
                } catch (error) {
                    if (tried >= instances.length || !unreachable(error)) {
                        throw error;
                    }
                    if (current === at) {
                        current = (current + 1) % instances.length;
                        emit({ event: "failover", conn: name, to: instances[current] });
                    }
                }
            }
        }
        getCookieString(url) {
            return inner.getCookieString(url);
        }
    }
    const BaseEventSource = require("eventsource");
    class FailoverEventSource extends BaseEventSource {
        constructor(url, init) {
            super(pick(url), init);
        }
    }
    const BaseWebSocket = require("ws");
    class FailoverWebSocket extends BaseWebSocket {
        constructor(url, protocols, init) {
            super(pick(url), protocols, init);
        }
    }
    return { httpClient: new FailoverHttpClient(), EventSource: FailoverEventSource, WebSocket: FailoverWebSocket };
}

async function connect(command) {
    if (connections.has(command.name)) {
        throw new Error(`connection ${command.name} exists`);
    }
    const name = command.name;
    const options = { logger };
    let started = false;
    if (command.tokens && command.tokens.length) {
        const tokens = command.tokens;
        options.accessTokenFactory = () => (started ? tokens[tokens.length - 1] : tokens[0]);
    }
    if (command.transport) {
        options.transport = signalR.HttpTransportType[command.transport];
    }
    if (Array.isArray(command.failover) && command.failover.length) {
        Object.assign(options, failover(name, command.failover));
    }
    if (Array.isArray(command.instances) && command.instances.length) {
        Object.assign(options, scatter(name, command.instances, command.negotiateOn, command.rotate));
    }
    let builder = new signalR.HubConnectionBuilder().withUrl(command.url, options).configureLogging(logger);
    if (command.protocol === "messagepack") {
        builder = builder.withHubProtocol(new MessagePackHubProtocol());
    }
    if (command.stateful) {
        builder = builder.withStatefulReconnect();
    }
    if (Array.isArray(command.reconnect)) {
        builder = builder.withAutomaticReconnect(command.reconnect);
    } else if (command.reconnect) {
        builder = builder.withAutomaticReconnect();
    }
    const connection = builder.build();
    for (const method of command.answers || []) {
        connection.on(method, (arg) => `answered ${JSON.stringify(arg)}`); // client results
    }
    for (const target of command.targets || []) {
        connection.on(target, (...args) => emit({ event: "message", conn: name, target, args }));
    }
    connection.onreconnecting((error) => emit({ event: "reconnecting", conn: name, error: errorText(error) }));
    connection.onreconnected((connectionId) =>
        emit({ event: "reconnected", conn: name, connectionId: connectionId ?? null }),
    );
    connection.onclose((error) => emit({ event: "close", conn: name, error: errorText(error) }));
    connections.set(name, connection);
    try {
        await connection.start();
    } catch (error) {
        connections.delete(name);
        throw error;
    }
    started = true;
    return { connectionId: connection.connectionId };
}

async function handle(command) {
    switch (command.op) {
        case "connect":
            return connect(command);
        case "invoke": {
            const value = await get(command.name).invoke(command.method, ...(command.args || []));
            return value === undefined ? null : value;
        }
        case "stream": {
            const items = [];
            await new Promise((resolve, reject) => {
                get(command.name)
                    .stream(command.method, ...(command.args || []))
                    .subscribe({ next: (item) => items.push(item), complete: resolve, error: reject });
            });
            return items;
        }
        case "upload": {
            const subject = new signalR.Subject();
            const result = get(command.name).invoke(command.method, subject);
            for (const item of command.items || []) {
                subject.next(item);
            }
            subject.complete();
            return await result;
        }
        case "send":
            await get(command.name).send(command.method, ...(command.args || []));
            return null;
        case "drop":
            // A network drop: the WebSocket goes away without a close frame.
            get(command.name).connection.transport._webSocket._socket.destroy();
            return null;
        case "stop":
            await get(command.name).stop();
            connections.delete(command.name);
            return null;
        case "state": {
            const connection = get(command.name);
            return { state: connection.state, connectionId: connection.connectionId ?? null };
        }
        default:
            throw new Error(`unknown op ${command.op}`);
    }
}

async function stopAll() {
    await Promise.allSettled([...connections.values()].map((connection) => connection.stop()));
    connections.clear();
}

const input = createInterface({ input: process.stdin });
input.on("line", (line) => {
    if (!line.trim()) {
        return;
    }
    const command = JSON.parse(line);
    if (command.op === "exit") {
        stopAll().finally(() => process.exit(0));
        return;
    }
    handle(command).then(
        (value) => emit({ reply: command.id, ok: true, value }),
        (error) =>
            emit({
                reply: command.id,
                ok: false,
                error: errorText(error),
                errorType: error && error.constructor ? error.constructor.name : null,
                statusCode: error && typeof error.statusCode === "number" ? error.statusCode : null,
            }),
    );
});
input.on("close", () => {
    stopAll().finally(() => process.exit(0));
});
emit({ event: "ready" });
