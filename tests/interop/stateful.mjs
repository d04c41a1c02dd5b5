// Stateful reconnect with the official client: drop the WebSocket without a close frame
// mid-session and check that nothing is lost or duplicated and the connection survives.
// Usage: node stateful.mjs <hubUrl> <json|messagepack> <timeoutMs>
import * as signalR from "@microsoft/signalr";
import { MessagePackHubProtocol } from "@microsoft/signalr-protocol-msgpack";

const [url, protocol, timeoutText] = process.argv.slice(2);
const timeoutMs = Number(timeoutText);
setTimeout(() => { console.log("INTEROP-RESULT " + JSON.stringify({ error: "timed out" })); process.exit(2); }, timeoutMs);

const builder = new signalR.HubConnectionBuilder()
  .withUrl(url, { transport: signalR.HttpTransportType.WebSockets })
  .withStatefulReconnect()
  .withAutomaticReconnect()
  .configureLogging(signalR.LogLevel.Warning);
if (protocol === "messagepack") builder.withHubProtocol(new MessagePackHubProtocol());
const connection = builder.build();

const received = [];
let reconnecting = 0;
let sockets = 0;
connection.onreconnecting(() => { reconnecting += 1; });
connection.on("tick", (n) => { received.push(n); });

const result = {};
try {
  await connection.start();
  const firstId = connection.connectionId;
  const transport = connection.connection.transport;
  await connection.invoke("JoinGroup", "g");
  for (let i = 0; i < 5; i++) await connection.invoke("SendToGroup", "g", "tick", i);
  sockets += 1;
  // A network drop: the socket goes away without a WebSocket close frame.
  transport._webSocket._socket.destroy();
  // These are sent (and buffered by the client) while the socket is down.
  const pending = [];
  for (let i = 5; i < 10; i++) pending.push(connection.invoke("SendToGroup", "g", "tick", i));
  await Promise.all(pending);
  // Group membership survived: a send after the resume still reaches us.
  await connection.invoke("SendToGroup", "g", "tick", 10);
  result.echo = await connection.invoke("Echo", "after resume");
  result.sameConnectionId = firstId === connection.connectionId;
  result.received = received;
  result.reconnecting = reconnecting;
  result.state = connection.state;
  await connection.stop();
} catch (error) {
  result.error = String(error);
}
console.log("INTEROP-RESULT " + JSON.stringify(result));
process.exit(0);
