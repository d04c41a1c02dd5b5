// Drives the official SignalR JS client (@microsoft/signalr 10.x) against a hero hub.
//
// Usage: node scenarios.mjs config.json   (or: node scenarios.mjs < config.json)
//   config = {
//     "hubUrl": "http://127.0.0.1:PORT/conformance",
//     "transport": "WebSockets" | "ServerSentEvents" | "LongPolling" | null,
//     "protocol": "json" | "messagepack",
//     "unit": 1.0,                       // every wait below is a multiple of this (seconds)
//     "scenarios": ["echo", ...],        // names from SCENARIOS
//     "echoValues": {"name": value, ...} // used by the "echo" scenario
//   }
// Prints exactly one line on stdout: `INTEROP-RESULT {"results": {name: {"ok": true, "value": ...}
// | {"ok": false, "error": "...", "state": ...}}, "durationMs": n}`. Client logs go to stderr.
// Every wait has a timeout, every connection is stopped, and the process always exits.

import { readFile } from "node:fs/promises";

import * as signalR from "@microsoft/signalr";
import { MessagePackHubProtocol } from "@microsoft/signalr-protocol-msgpack";

const MARK = "INTEROP-RESULT ";
const LOG_LEVEL = process.env.HERO_INTEROP_LOG === "debug" ? signalR.LogLevel.Trace : signalR.LogLevel.Error;

const logger = {
    log(level, message) {
        if (level >= LOG_LEVEL) {
            process.stderr.write(`[${new Date().toISOString()}] ${signalR.LogLevel[level]}: ${message}\n`);
        }
    },
};

// ---------------------------------------------------------------- small async helpers

function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
}

function deferred() {
    let resolve;
    let reject;
    const promise = new Promise((res, rej) => {
        resolve = res;
        reject = rej;
    });
    return { promise, resolve, reject };
}

async function withTimeout(promise, ms, label) {
    let timer;
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${label}`)), ms);
    });
    try {
        return await Promise.race([promise, timeout]);
    } finally {
        clearTimeout(timer);
    }
}

function errorText(error) {
    if (error === undefined || error === null) {
        return null;
    }
    return error instanceof Error ? error.message : String(error);
}

// Settles a promise into plain data: {resolved: true, value} or {resolved: false, error}.
async function settle(promise, ms, label) {
    try {
        const value = await withTimeout(promise, ms, label);
        return { resolved: true, value: value === undefined ? null : value };
    } catch (error) {
        return { resolved: false, error: errorText(error) };
    }
}

// A hub protocol wrapper that records every parsed incoming and every written outgoing message,
// so scenarios can observe the wire (e.g. StreamItems the client drops after a cancel).
class TapProtocol {
    constructor(inner) {
        this.inner = inner;
        this.name = inner.name;
        this.version = inner.version;
        this.transferFormat = inner.transferFormat;
        this.incoming = [];
        this.outgoing = [];
    }

    parseMessages(input, log) {
        const messages = this.inner.parseMessages(input, log);
        const at = Date.now();
        for (const message of messages) {
            this.incoming.push({ at, message });
        }
        return messages;
    }

    writeMessage(message) {
        this.outgoing.push({ at: Date.now(), message });
        return this.inner.writeMessage(message);
    }
}

// Records the arguments of client-method invocations and lets a scenario wait for them.
class Recorder {
    constructor(connection, targets) {
        this.received = {};
        this.waiters = [];
        for (const [key, target] of Object.entries(targets)) {
            this.received[key] = [];
            connection.on(target, (arg) => {
                this.received[key].push(arg);
                for (const waiter of [...this.waiters]) {
                    waiter();
                }
            });
        }
    }

    has(key, value) {
        return this.received[key].some((item) => JSON.stringify(item) === JSON.stringify(value));
    }

    waitFor(key, value, ms) {
        const done = deferred();
        const check = () => {
            if (this.has(key, value)) {
                done.resolve();
            }
        };
        this.waiters.push(check);
        check();
        return withTimeout(done.promise, ms, `${key} receives ${JSON.stringify(value)}`).finally(() => {
            this.waiters.splice(this.waiters.indexOf(check), 1);
        });
    }
}

// ---------------------------------------------------------------- scenario context

let uidCounter = 0;

class Context {
    constructor(config) {
        this.config = config;
        this.unitMs = 1000 * (config.unit || 1);
        this.connections = [];
        this.state = {};
        this.tag = `${process.pid}_${Date.now().toString(36)}`;
    }

    ms(units) {
        return Math.round(units * this.unitMs);
    }

    uid(prefix) {
        uidCounter += 1;
        return `${prefix}_${this.tag}_${uidCounter}`;
    }

    protocol() {
        return this.config.protocol === "messagepack" ? new MessagePackHubProtocol() : new signalR.JsonHubProtocol();
    }

    // Builds (not starts) a connection for this scenario's transport/protocol.
    build({ reconnect = null, skipNegotiation = false, url = null } = {}) {
        const tap = new TapProtocol(this.protocol());
        const options = { logger };
        if (this.config.transport) {
            options.transport = signalR.HttpTransportType[this.config.transport];
        }
        if (skipNegotiation) {
            options.skipNegotiation = true;
        }
        let builder = new signalR.HubConnectionBuilder()
            .withUrl(url || this.config.hubUrl, options)
            .withHubProtocol(tap)
            .configureLogging(logger);
        if (reconnect) {
            builder = builder.withAutomaticReconnect(reconnect);
        }
        const connection = builder.build();
        connection.tap = tap;
        this.connections.push(connection);
        return connection;
    }

    async connect(options = {}) {
        const connection = this.build(options);
        await withTimeout(connection.start(), this.ms(10), "connection.start()");
        return connection;
    }

    invoke(connection, method, ...args) {
        return withTimeout(connection.invoke(method, ...args), this.ms(10), `invoke ${method}`);
    }

    settleInvoke(connection, method, ...args) {
        return settle(connection.invoke(method, ...args), this.ms(10), `invoke ${method}`);
    }

    async stopAll() {
        await Promise.all(
            this.connections.map((connection) =>
                withTimeout(connection.stop(), this.ms(5), "connection.stop()").catch((error) => {
                    logger.log(signalR.LogLevel.Error, `stop failed: ${errorText(error)}`);
                }),
            ),
        );
    }
}

// Collects a server-to-client stream: items, completion and error, with a timeout.
function collectStream(ctx, connection, method, ...args) {
    const items = [];
    const done = deferred();
    connection.stream(method, ...args).subscribe({
        next: (item) => items.push(item),
        complete: () => done.resolve({ items, completed: true, error: null }),
        error: (error) => done.resolve({ items, completed: false, error: errorText(error) }),
    });
    return withTimeout(done.promise, ctx.ms(10), `stream ${method}`);
}

// ---------------------------------------------------------------- scenarios

const SCENARIOS = {
    async echo(ctx) {
        const connection = await ctx.connect();
        const values = {};
        for (const [name, value] of Object.entries(ctx.config.echoValues || {})) {
            const returned = await ctx.invoke(connection, "Echo", value);
            values[name] = returned === undefined ? null : returned;
        }
        return { values };
    },

    async method_name_case(ctx) {
        const connection = await ctx.connect();
        return {
            lower: await ctx.invoke(connection, "echo", "lower"),
            upper: await ctx.invoke(connection, "ECHO", "upper"),
            mixed: await ctx.invoke(connection, "add", 40, 2),
        };
    },

    async add(ctx) {
        const connection = await ctx.connect();
        return {
            ints: await ctx.invoke(connection, "Add", 2, 3),
            floats: await ctx.invoke(connection, "Add", 1.5, 2.25),
            negative: await ctx.invoke(connection, "Add", -7, 7),
            large: await ctx.invoke(connection, "Add", 2 ** 40, 1),
        };
    },

    async fail(ctx) {
        const connection = await ctx.connect();
        const message = ctx.config.failMessage || "room is full";
        return {
            outcome: await ctx.settleInvoke(connection, "Fail", message),
            after: await ctx.invoke(connection, "Echo", "after-fail"),
        };
    },

    async crash(ctx) {
        const connection = await ctx.connect();
        return {
            outcome: await ctx.settleInvoke(connection, "Crash"),
            after: await ctx.invoke(connection, "Echo", "after-crash"),
        };
    },

    async counter(ctx) {
        const connection = await ctx.connect();
        return {
            five: await collectStream(ctx, connection, "Counter", 5, 10),
            zero: await collectStream(ctx, connection, "Counter", 0, 0),
        };
    },

    async stream_cancel(ctx) {
        const connection = await ctx.connect();
        const tap = connection.tap;
        const seen = [];
        const enough = deferred();
        const subscriberEvents = [];
        const subscription = connection.stream("Counter", 1000, 20).subscribe({
            next: (item) => {
                seen.push(item);
                if (seen.length >= 3) {
                    enough.resolve();
                }
            },
            complete: () => subscriberEvents.push("complete"),
            error: (error) => subscriberEvents.push(`error: ${errorText(error)}`),
        });
        await withTimeout(enough.promise, ctx.ms(10), "three stream items");
        subscription.dispose();
        const disposedAt = Date.now();
        ctx.state.seenAtDispose = [...seen];

        // Wait until the CancelInvocation is on the wire, then give in-flight items time to land.
        const cancelSent = () => tap.outgoing.some((entry) => entry.message.type === signalR.MessageType.CancelInvocation);
        const cancelDeadline = Date.now() + ctx.ms(5);
        while (!cancelSent() && Date.now() < cancelDeadline) {
            await sleep(10);
        }
        const grace = ctx.ms(0.5);
        const observe = ctx.ms(0.7);
        await sleep(grace + observe);
        const echo = await ctx.invoke(connection, "Echo", "after-cancel");

        const invocation = tap.outgoing.find((entry) => entry.message.type === signalR.MessageType.StreamInvocation);
        const invocationId = invocation ? invocation.message.invocationId : null;
        const ofStream = tap.incoming.filter((entry) => entry.message.invocationId === invocationId);
        const items = ofStream.filter((entry) => entry.message.type === signalR.MessageType.StreamItem);
        const completions = ofStream.filter((entry) => entry.message.type === signalR.MessageType.Completion);
        const cancel = tap.outgoing.find((entry) => entry.message.type === signalR.MessageType.CancelInvocation);
        return {
            invocationId,
            cancelSent: Boolean(cancel),
            cancelInvocationId: cancel ? cancel.message.invocationId : null,
            itemsBeforeDispose: seen.length,
            subscriberItemsAfterDispose: seen.length - ctx.state.seenAtDispose.length,
            wireItemsTotal: items.length,
            wireItemsAfterGrace: items.filter((entry) => entry.at > disposedAt + grace).length,
            observeMs: observe,
            completions: completions.map((entry) => ({
                error: entry.message.error ?? null,
                hasResult: entry.message.result !== undefined,
            })),
            subscriberEvents,
            echo,
        };
    },

    async sum(ctx) {
        const connection = await ctx.connect();
        const subject = new signalR.Subject();
        const total = ctx.invoke(connection, "Sum", subject);
        subject.next(1);
        subject.next(2);
        subject.next(3.5);
        subject.next(-0.5);
        subject.complete();

        const empty = new signalR.Subject();
        const emptyTotal = ctx.invoke(connection, "Sum", empty);
        empty.complete();

        const many = new signalR.Subject();
        const manyTotal = ctx.invoke(connection, "Sum", many);
        for (let i = 1; i <= 50; i += 1) {
            many.next(i);
        }
        many.complete();

        const broken = new signalR.Subject();
        const brokenOutcome = ctx.settleInvoke(connection, "Sum", broken);
        broken.next(1);
        broken.error(new Error("upload-broke"));

        return {
            total: await total,
            empty: await emptyTotal,
            many: await manyTotal,
            broken: await brokenOutcome,
            after: await ctx.invoke(connection, "Echo", "after-sum"),
        };
    },

    async connection_id(ctx) {
        const first = await ctx.connect();
        const second = await ctx.connect();
        return {
            client: first.connectionId,
            server: await ctx.invoke(first, "ConnectionId"),
            otherClient: second.connectionId,
            otherServer: await ctx.invoke(second, "ConnectionId"),
        };
    },

    async negotiate_v0_client(ctx) {
        // The JS client only adds negotiateVersion=1 when the URL has none: this makes it negotiate v0
        // and then connect with ?id=<connectionId> (what pysignalr/signalrcore do).
        const separator = ctx.config.hubUrl.includes("?") ? "&" : "?";
        const connection = await ctx.connect({ url: `${ctx.config.hubUrl}${separator}negotiateVersion=0&app=x` });
        return {
            client: connection.connectionId,
            server: await ctx.invoke(connection, "ConnectionId"),
            echo: await ctx.invoke(connection, "Echo", "v0"),
            stream: await collectStream(ctx, connection, "Counter", 3, 0),
        };
    },

    async skip_negotiation(ctx) {
        const connection = await ctx.connect({ skipNegotiation: true });
        return {
            client: connection.connectionId,
            server: await ctx.invoke(connection, "ConnectionId"),
            echo: await ctx.invoke(connection, "Echo", { skip: true, n: [1, 2] }),
            stream: await collectStream(ctx, connection, "Counter", 3, 0),
        };
    },

    async broadcast_groups(ctx) {
        const targets = {
            broadcast: ctx.uid("broadcast"),
            others: ctx.uid("others"),
            group: ctx.uid("group"),
            sentinel: ctx.uid("sentinel"),
        };
        const group = ctx.uid("Room");
        const a = await ctx.connect();
        const b = await ctx.connect();
        const c = await ctx.connect();
        const rec = { a: new Recorder(a, targets), b: new Recorder(b, targets), c: new Recorder(c, targets) };
        ctx.state.received = { a: rec.a.received, b: rec.b.received, c: rec.c.received };
        const wait = (who, key, value) => rec[who].waitFor(key, value, ctx.ms(5));
        const steps = [];

        // Barrier: anything the server sent to `who` before this broadcast has arrived once it arrives.
        let sentinelCount = 0;
        const barrier = async (who) => {
            sentinelCount += 1;
            const value = `s${sentinelCount}`;
            await ctx.invoke(a, "Broadcast", targets.sentinel, value);
            await Promise.all(who.map((name) => wait(name, "sentinel", value)));
        };

        await ctx.invoke(a, "Broadcast", targets.broadcast, "from-a");
        await Promise.all([wait("a", "broadcast", "from-a"), wait("b", "broadcast", "from-a"), wait("c", "broadcast", "from-a")]);
        steps.push("broadcast from a");
        await ctx.invoke(b, "Broadcast", targets.broadcast, { from: "b", n: 1 });
        await Promise.all(["a", "b", "c"].map((who) => wait(who, "broadcast", { from: "b", n: 1 })));
        steps.push("broadcast from b");

        await ctx.invoke(b, "SendToOthers", targets.others, "others-b");
        await Promise.all([wait("a", "others", "others-b"), wait("c", "others", "others-b")]);
        await barrier(["b"]);
        steps.push("send to others");

        await ctx.invoke(a, "JoinGroup", group);
        await ctx.invoke(b, "JoinGroup", group);
        await ctx.invoke(a, "SendToGroup", group, targets.group, "g1");
        await Promise.all([wait("a", "group", "g1"), wait("b", "group", "g1")]);
        await ctx.invoke(c, "SendToGroup", group, targets.group, "g2-from-non-member");
        await Promise.all([wait("a", "group", "g2-from-non-member"), wait("b", "group", "g2-from-non-member")]);
        await barrier(["c"]);
        steps.push("send to group");

        await ctx.invoke(a, "SendToGroup", group.toUpperCase(), targets.group, "g-wrong-case");
        await barrier(["a", "b", "c"]);
        steps.push("group names are case-sensitive");

        await ctx.invoke(a, "JoinGroup", group); // idempotent
        await ctx.invoke(b, "LeaveGroup", group);
        await ctx.invoke(a, "SendToGroup", group, targets.group, "g3-after-leave");
        await wait("a", "group", "g3-after-leave");
        await barrier(["b", "c"]);
        steps.push("leave group");

        return { steps, received: ctx.state.received };
    },

    async ask_client(ctx) {
        const connection = await ctx.connect();
        connection.on("double", (x) => x * 2);
        connection.on("describe", async (x) => {
            await sleep(10);
            return { got: x, list: [1, "two", null], nested: { ok: true } };
        });
        connection.on("explode", () => {
            throw new Error("client-side boom");
        });
        connection.on("returnsNothing", () => undefined);
        return {
            doubled: await ctx.invoke(connection, "AskClient", "double", 21),
            described: await ctx.invoke(connection, "AskClient", "describe", "hi"),
            thrown: await ctx.settleInvoke(connection, "AskClient", "explode", 1),
            missing: await ctx.settleInvoke(connection, "AskClient", ctx.uid("noSuchHandler"), 1),
            nothing: await ctx.settleInvoke(connection, "AskClient", "returnsNothing", 1),
            after: await ctx.invoke(connection, "Echo", "after-ask"),
        };
    },

    async abort(ctx) {
        const connection = await ctx.connect({ reconnect: [0, 0, 0] });
        const closed = deferred();
        const events = [];
        connection.onreconnecting((error) => events.push(`reconnecting: ${errorText(error)}`));
        connection.onreconnected((id) => events.push(`reconnected: ${id}`));
        connection.onclose((error) => {
            events.push(`close: ${errorText(error)}`);
            closed.resolve(error);
        });
        ctx.state.events = events;
        const invoked = await ctx.settleInvoke(connection, "Abort");
        const closeError = await withTimeout(closed.promise, ctx.ms(10), "onclose after Abort");
        await sleep(ctx.ms(0.5)); // a reconnect attempt with delay 0 would show up here
        const closeMessages = connection.tap.incoming.filter((entry) => entry.message.type === signalR.MessageType.Close);
        return {
            invoke: invoked,
            closeError: errorText(closeError),
            events,
            state: connection.state,
            closeMessages: closeMessages.map((entry) => ({
                error: entry.message.error ?? null,
                allowReconnect: entry.message.allowReconnect ?? null,
            })),
        };
    },

    async unknown_method(ctx) {
        const connection = await ctx.connect();
        return {
            outcome: await ctx.settleInvoke(connection, "Nope", 1),
            after: await ctx.invoke(connection, "Echo", "after-unknown"),
        };
    },

    async wrong_argument_count(ctx) {
        const connection = await ctx.connect();
        return {
            tooFew: await ctx.settleInvoke(connection, "Add", 1),
            tooMany: await ctx.settleInvoke(connection, "Add", 1, 2, 3),
            after: await ctx.invoke(connection, "Echo", "after-wrong-args"),
            add: await ctx.invoke(connection, "Add", 1, 2),
            state: connection.state,
        };
    },

    async send_without_response(ctx) {
        const connection = await ctx.connect();
        await withTimeout(connection.send("Nope", 1), ctx.ms(5), "send Nope");
        await withTimeout(connection.send("Crash"), ctx.ms(5), "send Crash");
        await withTimeout(connection.send("Add", 1), ctx.ms(5), "send Add(1)");
        await withTimeout(connection.send("Echo", "sent"), ctx.ms(5), "send Echo");
        const echo = await ctx.invoke(connection, "Echo", "after-send");
        const echoInvocation = connection.tap.outgoing.find(
            (entry) => entry.message.type === signalR.MessageType.Invocation && entry.message.invocationId !== undefined,
        );
        const unexpected = connection.tap.incoming
            .filter((entry) => entry.message.type === signalR.MessageType.Completion)
            .filter((entry) => entry.message.invocationId !== echoInvocation.message.invocationId)
            .map((entry) => entry.message);
        return { echo, unexpectedCompletions: unexpected, state: connection.state };
    },

    async streaming_misuse(ctx) {
        const connection = await ctx.connect();
        return {
            invokeStreaming: await ctx.settleInvoke(connection, "Counter", 3, 0),
            streamNonStreaming: await collectStream(ctx, connection, "Echo", 1),
            after: await ctx.invoke(connection, "Echo", "after-misuse"),
        };
    },

    async oversize(ctx) {
        const victim = await ctx.connect({ reconnect: [0, 0, 0] });
        const bystander = await ctx.connect();
        const oldId = victim.connectionId;
        const reconnecting = deferred();
        const reconnected = deferred();
        const events = [];
        victim.onreconnecting((error) => {
            events.push(`reconnecting: ${errorText(error)}`);
            reconnecting.resolve(errorText(error));
        });
        victim.onreconnected((id) => {
            events.push(`reconnected: ${id}`);
            reconnected.resolve(id);
        });
        victim.onclose((error) => {
            events.push(`close: ${errorText(error)}`);
            reconnecting.reject(new Error(`closed instead of reconnecting: ${errorText(error)}`));
            reconnected.reject(new Error(`closed instead of reconnecting: ${errorText(error)}`));
        });
        ctx.state.events = events;

        const big = "x".repeat(ctx.config.oversizeLength || 40000);
        const oversized = await ctx.settleInvoke(victim, "Echo", big);
        const bystanderDuring = await ctx.invoke(bystander, "Echo", "bystander-during");
        const reconnectingError = await withTimeout(reconnecting.promise, ctx.ms(10), "onreconnecting");
        const newId = await withTimeout(reconnected.promise, ctx.ms(10), "onreconnected");
        const closeMessages = victim.tap.incoming.filter((entry) => entry.message.type === signalR.MessageType.Close);
        return {
            oversized,
            bystanderDuring,
            reconnectingError,
            oldId,
            newId,
            events,
            closeMessages: closeMessages.map((entry) => ({
                error: entry.message.error ?? null,
                allowReconnect: entry.message.allowReconnect ?? null,
            })),
            victimAfter: await ctx.invoke(victim, "Echo", "victim-after"),
            victimServerId: await ctx.invoke(victim, "ConnectionId"),
            bystanderAfter: await ctx.invoke(bystander, "Echo", "bystander-after"),
            bystanderState: bystander.state,
        };
    },

    // Raw HTTP, no client library: negotiate versions as the server answers them.
    async negotiate_raw(ctx) {
        const post = async (query) => {
            const response = await withTimeout(
                fetch(`${ctx.config.hubUrl}/negotiate${query}`, { method: "POST" }),
                ctx.ms(5),
                `POST negotiate${query}`,
            );
            return {
                status: response.status,
                contentType: response.headers.get("content-type"),
                body: await response.json(),
            };
        };
        const get = await withTimeout(fetch(`${ctx.config.hubUrl}/negotiate`), ctx.ms(5), "GET negotiate");
        return {
            v0: await post(""),
            v1: await post("?negotiateVersion=1"),
            v1again: await post("?negotiateVersion=1"),
            v5: await post("?negotiateVersion=5"),
            nonInteger: await post("?negotiateVersion=abc"),
            getStatus: get.status,
        };
    },
};

// ---------------------------------------------------------------- main

async function readStdin() {
    const chunks = [];
    for await (const chunk of process.stdin) {
        chunks.push(chunk);
    }
    return Buffer.concat(chunks).toString("utf8");
}

async function runScenario(config, name) {
    const ctx = new Context(config);
    const scenario = SCENARIOS[name];
    const started = Date.now();
    let result;
    try {
        if (!scenario) {
            throw new Error(`unknown scenario ${name}`);
        }
        const value = await withTimeout(scenario(ctx), ctx.ms(30), `scenario ${name}`);
        // Snapshot now: stopping the connections below must not change what the scenario saw.
        result = { ok: true, value: JSON.parse(JSON.stringify(value ?? null)) };
    } catch (error) {
        result = {
            ok: false,
            error: errorText(error),
            stack: error instanceof Error ? error.stack : null,
            state: JSON.parse(JSON.stringify(ctx.state)),
        };
    }
    await ctx.stopAll();
    result.ms = Date.now() - started;
    return result;
}

async function main() {
    const started = Date.now();
    const source = process.argv[2] ? await readFile(process.argv[2], "utf8") : await readStdin();
    const config = JSON.parse(source);
    const results = {};
    for (const name of config.scenarios) {
        results[name] = await runScenario(config, name);
    }
    process.stdout.write(`${MARK}${JSON.stringify({ results, durationMs: Date.now() - started })}\n`);
}

// A scenario may abandon a promise that rejects later (e.g. after a timeout elsewhere); log it
// instead of letting Node kill the process and lose every other scenario's result.
process.on("unhandledRejection", (reason) => {
    logger.log(signalR.LogLevel.Error, `unhandled rejection: ${errorText(reason)}`);
});

const hardLimitMs = 1000 * 80 * Number(process.env.HERO_TEST_TIMEOUT_UNIT || 1);
setTimeout(() => {
    process.stderr.write(`scenarios.mjs: hard limit of ${hardLimitMs} ms reached\n`);
    process.exit(3);
}, hardLimitMs).unref();

main().then(
    () => process.exit(0),
    (error) => {
        process.stderr.write(`scenarios.mjs failed: ${error && error.stack ? error.stack : error}\n`);
        process.exit(2);
    },
);
