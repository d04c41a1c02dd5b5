// Stateful reconnect across many forced socket drops, with the official client.
// Usage: node stateful_drops.mjs <hubUrl> <json|messagepack> <drops> <perRound> <timeoutMs>
// A receiver with stateful reconnect joins group "drops"; a plain sender connection sends
// `perRound` numbered messages to the group per round, and between rounds the receiver's
// WebSocket is destroyed without a close frame (a network drop) while the next round is
// already being sent. At the end every number must have arrived exactly once, in order.
import * as signalR from "@microsoft/signalr";
import { MessagePackHubProtocol } from "@microsoft/signalr-protocol-msgpack";

const [url, protocol, dropsText, perRoundText, timeoutText] = process.argv.slice(2);
const drops = Number(dropsText);
const perRound = Number(perRoundText);
setTimeout(() => { console.log("INTEROP-RESULT " + JSON.stringify({ error: "timed out" })); process.exit(2); }, Number(timeoutText));

function build(stateful) {
  const builder = new signalR.HubConnectionBuilder()
    .withUrl(url, { transport: signalR.HttpTransportType.WebSockets })
    .configureLogging(signalR.LogLevel.Error);
  if (stateful) builder.withStatefulReconnect().withAutomaticReconnect();
  if (protocol === "messagepack") builder.withHubProtocol(new MessagePackHubProtocol());
  return builder.build();
}

const receiver = build(true);
const sender = build(false);
const seen = new Map();
let last = -1;
let outOfOrder = 0;
let reconnecting = 0;
receiver.onreconnecting(() => { reconnecting += 1; });
receiver.on("seq", (n) => {
  seen.set(n, (seen.get(n) || 0) + 1);
  if (n < last) outOfOrder += 1;
  last = Math.max(last, n);
});

const result = {};
try {
  await receiver.start();
  await sender.start();
  const firstId = receiver.connectionId;
  await receiver.invoke("JoinGroup", "drops");
  const started = Date.now();
  let next = 0;
  for (let round = 0; round <= drops; round++) {
    const sends = [];
    for (let i = 0; i < perRound; i++) sends.push(sender.invoke("SendToGroup", "drops", "seq", next++));
    if (round < drops) receiver.connection.transport._webSocket._socket.destroy();
    await Promise.all(sends);
    // A round trip on the receiver: it has resumed and everything sent before was replayed.
    await receiver.invoke("Echo", round);
  }
  const total = next;
  let lost = 0;
  let duplicated = 0;
  for (let n = 0; n < total; n++) {
    const count = seen.get(n) || 0;
    if (count === 0) lost += 1;
    if (count > 1) duplicated += count - 1;
  }
  Object.assign(result, {
    protocol, drops, sent: total, received: [...seen.values()].reduce((a, b) => a + b, 0),
    lost, duplicated, outOfOrder, reconnecting,
    sameConnectionId: firstId === receiver.connectionId, state: receiver.state,
    seconds: (Date.now() - started) / 1000,
  });
  await sender.stop();
  await receiver.stop();
} catch (error) {
  result.error = String(error);
}
console.log("INTEROP-RESULT " + JSON.stringify(result));
process.exit(0);
