// The hero chat demo: the official SignalR browser client (window.signalR, loaded from
// /demo/vendor/) against AppHub at /realtime/hub, the chat REST API at /api/v1/chat, and the
// notifications stream at /notifications (Server-Sent Events). No framework, no build step.
// Every piece of text that comes from the server is put in the page with textContent.

const signalR = window.signalR;
const API = "/api/v1/chat";
const REACTIONS = ["👍", "❤️", "😂", "🎉"];
const TYPING_SHOWN_MS = 3500;
const TYPING_SENT_EVERY_MS = 2000;

const $ = (id) => document.getElementById(id);

const state = {
  config: null,
  login: null, // demo user login, when signed in through the demo
  token: null,
  me: null, // {userId, name}
  names: new Map(), // userId -> display name
  connection: null,
  channels: new Map(), // id -> ChannelDto
  current: null, // channel id
  thread: null, // parent message id
  typing: new Map(), // userId -> timeout handle
  lastTypingSent: 0,
  online: new Map(), // userId -> bool
  events: null, // EventSource
  lastNotificationId: null,
  notifications: [],
  messages: new Map(), // id -> MessageDto last drawn
};

// ------------------------------------------------------------------ small helpers

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, "");
    else if (value !== false && value != null) node.setAttribute(key, String(value));
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

function nameOf(userId) {
  return state.names.get(userId) ?? `user ${String(userId).slice(0, 8)}`;
}

function timeOf(iso) {
  return iso ? new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "";
}

function setStatus(kind, text) {
  const status = $("status");
  status.dataset.state = kind;
  status.textContent = text;
}

function describe() {
  return `${$("transport").selectedOptions[0].text}, ${$("protocol").selectedOptions[0].text}`;
}

// ------------------------------------------------------------------ tokens and REST

async function freshToken() {
  if (!state.login) return state.token;
  const response = await fetch("/demo/token", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ login: state.login }),
  });
  if (!response.ok) throw new Error(`sign-in failed: ${response.status}`);
  const body = await response.json();
  state.token = body.accessToken;
  return state.token;
}

async function api(path, { method = "GET", body } = {}, retried = false) {
  const response = await fetch(path, {
    method,
    headers: {
      Authorization: `Bearer ${state.token}`,
      ...(body === undefined ? {} : { "Content-Type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401 && state.login && !retried) {
    await freshToken(); // the server restarted with a new development key
    return api(path, { method, body }, true);
  }
  if (!response.ok) {
    let detail = response.statusText;
    try {
      detail = (await response.json()).detail ?? detail;
    } catch {
      /* not JSON */
    }
    throw new Error(`${method} ${path}: ${response.status} ${detail}`);
  }
  return response.status === 204 ? null : response.json();
}

// ------------------------------------------------------------------ the hub connection

function retryPolicy() {
  // Exponential back-off with full jitter, capped at 10 s, never giving up: the demo keeps
  // trying until the server is back.
  return {
    nextRetryDelayInMilliseconds(context) {
      const ceiling = Math.min(10_000, 500 * 2 ** Math.min(context.previousRetryCount, 5));
      return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
    },
  };
}

function buildConnection() {
  const builder = new signalR.HubConnectionBuilder()
    .withUrl("/realtime/hub", {
      transport: signalR.HttpTransportType[$("transport").value],
      accessTokenFactory: () => freshToken(),
    })
    .withAutomaticReconnect(retryPolicy())
    .configureLogging(signalR.LogLevel.Warning);
  if ($("protocol").value === "messagepack") {
    builder.withHubProtocol(new signalR.protocols.msgpack.MessagePackHubProtocol());
  }
  const connection = builder.build();
  connection.on("ChatMessageCreated", onMessageCreated);
  connection.on("ChatMessageEdited", onMessageChanged);
  connection.on("ChatMessagePinned", onMessageChanged);
  connection.on("ChatMessageUnpinned", onMessageChanged);
  connection.on("ChatMessageDeleted", onMessageDeleted);
  connection.on("ChatReactionChanged", onReactionChanged);
  connection.on("ChatChannelAdded", () => loadChannels());
  connection.on("ChatChannelRemoved", onChannelRemoved);
  connection.on("ChatChannelMemberAdded", onMembersChanged);
  connection.on("ChatChannelMemberRemoved", onMembersChanged);
  connection.on("ChatChannelRead", onChannelRead);
  connection.on("ChatChannelMemberRead", () => {});
  connection.on("ChatTypingStarted", onTyping);
  connection.on("PresenceChanged", onPresence);
  connection.on("NotificationCreated", () => {}); // shown from the SSE stream
  connection.onreconnecting(() => setStatus("reconnecting", "reconnecting…"));
  connection.onreconnected(async () => {
    setStatus("connected", `connected · ${describe()}`);
    await catchUp();
  });
  connection.onclose(() => {
    if (state.connection === connection) setStatus("offline", "disconnected");
  });
  return connection;
}

async function connect() {
  const previous = state.connection;
  state.connection = null;
  if (previous) await previous.stop();
  const connection = buildConnection();
  state.connection = connection;
  setStatus("connecting", `connecting · ${describe()}`);
  try {
    await connection.start();
  } catch (error) {
    setStatus("offline", `could not connect: ${error.message ?? error}`);
    return;
  }
  if (state.connection !== connection) return;
  setStatus("connected", `connected · ${describe()}`);
  document.body.dataset.transport = $("transport").value;
  document.body.dataset.protocol = $("protocol").value;
}

async function catchUp() {
  // Live events sent while the connection was down are gone; the REST API has the truth.
  await loadChannels();
  if (state.current) await openChannel(state.current, { keepThread: true });
  await loadNotifications();
}

// ------------------------------------------------------------------ channels

async function loadChannels() {
  const list = await api(`${API}/channels?pageSize=200`);
  state.channels = new Map(list.map((c) => [c.id, c]));
  renderChannels();
  await loadDiscover();
}

function channelLabel(channel) {
  if (channel.type === "channel") return `# ${channel.name}`;
  const others = channel.members.map((m) => m.userId).filter((id) => id !== state.me.userId);
  return others.map(nameOf).join(", ") || "(just you)";
}

function renderChannels() {
  const channels = $("channel-list");
  const dms = $("dm-list");
  channels.replaceChildren();
  dms.replaceChildren();
  for (const channel of state.channels.values()) {
    const unread = state.current === channel.id ? 0 : channel.unreadCount;
    const button = el(
      "button",
      {
        type: "button",
        "data-channel": channel.id,
        "aria-current": state.current === channel.id ? "true" : "false",
        onclick: () => openChannel(channel.id),
      },
      el("span", { text: channelLabel(channel) }),
      unread > 0 ? el("span", { class: "badge", text: String(unread), "aria-label": `${unread} unread` }) : null,
    );
    (channel.type === "channel" ? channels : dms).append(el("li", {}, button));
  }
}

async function loadDiscover() {
  const list = await api(`${API}/channels/discover?pageSize=50`);
  const target = $("discover-list");
  target.replaceChildren();
  for (const channel of list) {
    target.append(
      el(
        "li",
        {},
        el("span", { text: `# ${channel.name} ` }),
        el("button", {
          type: "button",
          text: "Join",
          onclick: async () => {
            await api(`${API}/channels/${channel.id}/join`, { method: "POST" });
            await loadChannels();
            await openChannel(channel.id);
          },
        }),
      ),
    );
  }
}

async function openChannel(id, { keepThread = false } = {}) {
  state.current = id;
  if (!keepThread) closeThread();
  const [channel, page] = await Promise.all([
    api(`${API}/channels/${id}`),
    api(`${API}/channels/${id}/messages?pageSize=50`),
  ]);
  state.channels.set(id, channel);
  $("channel-title").textContent = channelLabel(channel);
  $("composer").hidden = false;
  $("show-pins").hidden = false;
  const list = $("messages");
  state.messages.clear(); // only what this channel shows is kept
  list.replaceChildren(...page.reverse().map(renderMessage));
  list.scrollTop = list.scrollHeight;
  renderChannels();
  await renderMembers(channel);
  await markRead();
  if (keepThread && state.thread) await openThread(state.thread);
}

async function markRead() {
  const last = $("messages").lastElementChild;
  if (!state.current || !last) return;
  const channel = state.channels.get(state.current);
  if (channel) channel.unreadCount = 0;
  await api(`${API}/channels/${state.current}/read`, {
    method: "POST",
    body: { messageId: last.dataset.message },
  });
}

async function renderMembers(channel) {
  $("members-panel").hidden = false;
  const ids = channel.members.map((m) => m.userId);
  if (ids.length) {
    const presence = await api(`/api/v1/realtime/presence?userIds=${ids.join(",")}`);
    for (const entry of presence) state.online.set(entry.userId, entry.online);
  }
  const list = $("member-list");
  list.replaceChildren(
    ...channel.members.map((m) =>
      el(
        "li",
        { "data-user": m.userId },
        el("span", {
          class: "dot",
          "data-online": String(Boolean(state.online.get(m.userId))),
          "aria-label": state.online.get(m.userId) ? "online" : "offline",
        }),
        el("span", { text: nameOf(m.userId) + (m.userId === state.me.userId ? " (you)" : "") }),
        m.role === "admin" ? el("small", { text: " admin" }) : null,
      ),
    ),
  );
  const select = $("add-member-select");
  const candidates = state.config.users.filter((u) => !ids.includes(u.userId));
  select.replaceChildren(...candidates.map((u) => el("option", { value: u.userId, text: u.name })));
  $("add-member").hidden = channel.type !== "channel" || candidates.length === 0;
}

// ------------------------------------------------------------------ messages

function renderMessage(message) {
  state.messages.set(message.id, message); // what is on the page, to apply changes to
  const mine = message.authorUserId === state.me.userId;
  const deleted = Boolean(message.deletedAtUtc);
  const item = el("li", {
    class: `message${deleted ? " deleted" : ""}${message.isPinned ? " pinned" : ""}`,
    "data-message": message.id,
  });
  const meta = el(
    "div",
    { class: "meta" },
    el("span", { class: "author", text: nameOf(message.authorUserId) }),
    el("time", { datetime: message.createdAtUtc, text: timeOf(message.createdAtUtc) }),
    message.editedAtUtc && !deleted ? el("span", { text: "(edited)" }) : null,
    message.isPinned ? el("span", { text: "📌 pinned" }) : null,
  );
  const body = el("p", { class: "body", text: deleted ? "message deleted" : message.body });
  item.append(meta, body);
  if (!deleted) item.append(renderActions(message, mine));
  return item;
}

function renderActions(message, mine) {
  const actions = el("div", { class: "actions" });
  for (const emoji of REACTIONS) {
    const who = message.reactions.filter((r) => r.emoji === emoji);
    const pressed = who.some((r) => r.userId === state.me.userId);
    actions.append(
      el("button", {
        type: "button",
        class: "reaction",
        "aria-pressed": String(pressed),
        "aria-label": `${emoji} reaction, ${who.length}`,
        text: who.length ? `${emoji} ${who.length}` : emoji,
        onclick: () => toggleReaction(message.id, emoji, pressed),
      }),
    );
  }
  if (!message.parentMessageId) {
    const replies = message.replyCount ? `Replies (${message.replyCount})` : "Reply";
    actions.append(el("button", { type: "button", text: replies, onclick: () => openThread(message.id) }));
  }
  actions.append(
    el("button", {
      type: "button",
      text: message.isPinned ? "Unpin" : "Pin",
      onclick: () => api(`${API}/messages/${message.id}/pin`, { method: message.isPinned ? "DELETE" : "POST" }),
    }),
  );
  if (mine) {
    actions.append(
      el("button", { type: "button", text: "Edit", onclick: () => editMessage(message) }),
      el("button", {
        type: "button",
        text: "Delete",
        onclick: () => api(`${API}/messages/${message.id}`, { method: "DELETE" }),
      }),
    );
  }
  return actions;
}

async function toggleReaction(id, emoji, pressed) {
  if (pressed) {
    await api(`${API}/messages/${id}/reactions/${encodeURIComponent(emoji)}`, { method: "DELETE" });
  } else {
    await api(`${API}/messages/${id}/reactions`, { method: "POST", body: { emoji } });
  }
}

async function editMessage(message) {
  const body = window.prompt("Edit message", message.body);
  if (body != null && body.trim() && body !== message.body) {
    await api(`${API}/messages/${message.id}`, { method: "PUT", body: { body } });
  }
}

function findMessage(id) {
  return document.querySelectorAll(`[data-message="${CSS.escape(id)}"]`);
}

function replaceMessage(message) {
  for (const node of findMessage(message.id)) node.replaceWith(renderMessage(message));
}

async function onMessageCreated(message) {
  if (message.parentMessageId) {
    if (state.thread === message.parentMessageId) appendTo($("thread"), message);
    // the parent's reply count changed: redraw it from what the page already has
    const parent = state.messages.get(message.parentMessageId);
    if (parent) replaceMessage({ ...parent, replyCount: parent.replyCount + 1 });
    return;
  }
  if (message.channelId === state.current) {
    appendTo($("messages"), message);
    clearTyping(message.authorUserId);
    if (document.visibilityState === "visible") await markRead();
  } else {
    const channel = state.channels.get(message.channelId);
    if (channel && message.authorUserId !== state.me.userId) {
      channel.unreadCount += 1;
      renderChannels();
    } else if (!channel) {
      await loadChannels();
    }
  }
}

function appendTo(list, message) {
  if (findMessageIn(list, message.id)) return; // a duplicate (clients de-duplicate by id)
  const near = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  list.append(renderMessage(message));
  if (near) list.scrollTop = list.scrollHeight;
}

function findMessageIn(list, id) {
  return list.querySelector(`[data-message="${CSS.escape(id)}"]`);
}

function onMessageChanged(message) {
  replaceMessage(message);
}

function onMessageDeleted({ messageId }) {
  for (const node of findMessage(messageId)) {
    node.classList.add("deleted");
    node.querySelector(".body").textContent = "message deleted";
    node.querySelector(".actions")?.remove();
  }
}

function onReactionChanged({ messageId, userId, emoji, kind }) {
  // The event says exactly what changed: apply it to the message as drawn.
  const message = state.messages.get(messageId);
  if (!message) return;
  const others = message.reactions.filter((r) => !(r.userId === userId && r.emoji === emoji));
  const reactions =
    kind === "added" ? [...others, { userId, emoji, createdAtUtc: null }] : others;
  replaceMessage({ ...message, reactions });
}

async function onChannelRemoved({ channelId }) {
  if (state.current === channelId) {
    state.current = null;
    $("messages").replaceChildren();
    $("channel-title").textContent = "Pick a channel";
    $("composer").hidden = true;
    $("members-panel").hidden = true;
  }
  await loadChannels();
}

async function onMembersChanged({ channelId }) {
  if (channelId === state.current) {
    const channel = await api(`${API}/channels/${channelId}`);
    state.channels.set(channelId, channel);
    await renderMembers(channel);
    $("channel-title").textContent = channelLabel(channel);
  }
}

function onChannelRead({ channelId }) {
  const channel = state.channels.get(channelId);
  if (channel) {
    channel.unreadCount = 0;
    renderChannels();
  }
}

// ------------------------------------------------------------------ typing and presence

function onTyping({ channelId, userId }) {
  if (channelId !== state.current || userId === state.me.userId) return;
  clearTimeout(state.typing.get(userId));
  state.typing.set(userId, setTimeout(() => clearTyping(userId), TYPING_SHOWN_MS));
  renderTyping();
}

function clearTyping(userId) {
  clearTimeout(state.typing.get(userId));
  state.typing.delete(userId);
  renderTyping();
}

function renderTyping() {
  const names = [...state.typing.keys()].map(nameOf);
  $("typing").textContent =
    names.length === 0 ? "" : `${names.join(", ")} ${names.length === 1 ? "is" : "are"} typing…`;
}

function onPresence({ userId, online }) {
  state.online.set(userId, online);
  const dot = document.querySelector(`#member-list [data-user="${CSS.escape(userId)}"] .dot`);
  if (dot) {
    dot.dataset.online = String(online);
    dot.setAttribute("aria-label", online ? "online" : "offline");
  }
}

function sendTyping() {
  const now = Date.now();
  if (!state.current || now - state.lastTypingSent < TYPING_SENT_EVERY_MS) return;
  if (state.connection?.state !== signalR.HubConnectionState.Connected) return;
  state.lastTypingSent = now;
  state.connection.invoke("Typing", state.current).catch(() => {});
}

// ------------------------------------------------------------------ threads and search

async function openThread(id) {
  state.thread = id;
  $("results-panel").hidden = true;
  $("thread-panel").hidden = false;
  const replies = await api(`${API}/messages/${id}/replies?pageSize=200`);
  $("thread").replaceChildren(...replies.reverse().map(renderMessage));
}

function closeThread() {
  state.thread = null;
  $("thread-panel").hidden = true;
  $("thread").replaceChildren();
}

async function search(query) {
  const results = await api(`${API}/search?q=${encodeURIComponent(query)}&pageSize=50`);
  $("thread-panel").hidden = true;
  $("results-panel").hidden = false;
  $("results").replaceChildren(
    ...results.map((message) => {
      const item = renderMessage(message);
      item.querySelector(".actions")?.remove();
      const channel = state.channels.get(message.channelId);
      item.prepend(
        el("button", {
          type: "button",
          text: channel ? `in ${channelLabel(channel)}` : "open",
          onclick: () => openChannel(message.channelId),
        }),
      );
      return item;
    }),
  );
  if (!results.length) $("results").append(el("li", { text: "No messages found." }));
}

// ------------------------------------------------------------------ notifications (SSE)

async function loadNotifications() {
  state.notifications = await api("/api/v1/notifications?pageSize=20");
  renderNotifications();
}

function renderNotifications() {
  const unread = state.notifications.filter((n) => !n.readAtUtc).length;
  const badge = $("bell-count");
  badge.hidden = unread === 0;
  badge.textContent = String(unread);
  $("bell").setAttribute("aria-label", `Notifications, ${unread} unread`);
  $("notification-list").replaceChildren(
    ...state.notifications.map((n) =>
      el(
        "li",
        { class: n.readAtUtc ? "" : "unread" },
        el("div", { text: n.title }),
        n.body ? el("small", { text: n.body }) : null,
      ),
    ),
  );
  if (!state.notifications.length) $("notification-list").append(el("li", { text: "Nothing yet." }));
}

function openEvents() {
  state.events?.close();
  const params = new URLSearchParams({ access_token: state.token });
  if (state.lastNotificationId) params.set("lastEventId", state.lastNotificationId);
  const source = new EventSource(`/notifications?${params}`);
  state.events = source;
  source.addEventListener("NotificationCreated", (event) => {
    state.lastNotificationId = event.lastEventId || state.lastNotificationId;
    const notification = JSON.parse(event.data);
    if (!state.notifications.some((n) => n.id === notification.id)) {
      state.notifications.unshift(notification);
      renderNotifications();
    }
  });
  source.addEventListener("error", () => {
    // EventSource retries by itself unless the server refused the stream (for example a
    // new development key after a restart): then open it again with a fresh token.
    if (source.readyState === EventSource.CLOSED && state.events === source) {
      setTimeout(async () => {
        if (state.events !== source) return;
        try {
          await freshToken();
        } catch {
          /* the server is still down; try again below */
        }
        openEvents();
      }, 2000 + Math.random() * 2000);
    }
  });
}

// ------------------------------------------------------------------ sign-in and start

async function signIn({ login = null, token = null }) {
  state.login = login;
  state.token = token;
  if (login) await freshToken();
  const claims = JSON.parse(atob(state.token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
  const userId = claims.sub ?? claims.uid;
  state.me = { userId, name: claims.name ?? userId };
  state.names.set(userId, state.me.name);
  sessionStorage.setItem("hero-demo", JSON.stringify({ login, token: login ? null : token }));
  $("sign-in").hidden = true;
  $("app").hidden = false;
  $("bell").hidden = false;
  $("sign-out").hidden = false;
  $("whoami").textContent = `signed in as ${state.me.name}`;
  renderDmPeople();
  await connect();
  await loadChannels();
  await loadNotifications();
  openEvents();
}

function renderDmPeople() {
  const fieldset = $("dm-people");
  fieldset.replaceChildren(el("legend", { text: "With" }));
  for (const user of state.config.users.filter((u) => u.userId !== state.me.userId)) {
    const id = `dm-${user.login}`;
    fieldset.append(
      el("label", { class: "inline", for: id }, el("input", { type: "checkbox", id, value: user.userId }), user.name),
    );
  }
}

function matchProtocolToTransport() {
  // Server-Sent Events carry text only: the official client refuses MessagePack over them.
  const sse = $("transport").value === "ServerSentEvents";
  const binary = $("protocol").querySelector("option[value='messagepack']");
  binary.disabled = sse;
  binary.title = sse ? "Server-Sent Events carry text only" : "";
  if (sse) $("protocol").value = "json";
}

function wire() {
  $("transport").addEventListener("change", () => {
    matchProtocolToTransport();
    if (state.me) connect();
  });
  $("protocol").addEventListener("change", () => state.me && connect());
  $("sign-out").addEventListener("click", () => {
    sessionStorage.removeItem("hero-demo");
    location.reload();
  });
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn({ token: $("token-input").value.trim() });
  });
  $("composer").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("composer-input");
    const body = input.value.trim();
    if (!body || !state.current) return;
    input.value = "";
    await api(`${API}/channels/${state.current}/messages`, { method: "POST", body: { body } });
  });
  $("composer-input").addEventListener("input", sendTyping);
  $("composer-input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  $("reply-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("reply-input");
    const body = input.value.trim();
    if (!body || !state.thread) return;
    input.value = "";
    await api(`${API}/channels/${state.current}/messages`, {
      method: "POST",
      body: { body, parentMessageId: state.thread },
    });
  });
  $("close-thread").addEventListener("click", closeThread);
  $("close-results").addEventListener("click", () => ($("results-panel").hidden = true));
  $("new-channel").addEventListener("submit", async (event) => {
    event.preventDefault();
    const channel = await api(`${API}/channels`, {
      method: "POST",
      body: { name: $("new-channel-name").value.trim(), isPrivate: $("new-channel-private").checked },
    });
    $("new-channel-name").value = "";
    await loadChannels();
    await openChannel(channel.id);
  });
  $("new-dm").addEventListener("submit", async (event) => {
    event.preventDefault();
    const userIds = [...$("dm-people").querySelectorAll("input:checked")].map((i) => i.value);
    if (!userIds.length) return;
    const channel = await api(`${API}/dms`, { method: "POST", body: { userIds } });
    await loadChannels();
    await openChannel(channel.id);
  });
  $("add-member").addEventListener("submit", async (event) => {
    event.preventDefault();
    const userId = $("add-member-select").value;
    if (!userId || !state.current) return;
    await api(`${API}/channels/${state.current}/members`, { method: "POST", body: { userIds: [userId] } });
  });
  $("show-pins").addEventListener("click", async () => {
    const pinned = await api(`${API}/channels/${state.current}/pinned`);
    $("thread-panel").hidden = true;
    $("results-panel").hidden = false;
    $("results").replaceChildren(...pinned.map(renderMessage));
    if (!pinned.length) $("results").append(el("li", { text: "Nothing pinned." }));
  });
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const query = $("search-input").value.trim();
    if (query) search(query);
  });
  $("bell").addEventListener("click", () => {
    const panel = $("notifications");
    panel.hidden = !panel.hidden;
    $("bell").setAttribute("aria-expanded", String(!panel.hidden));
  });
  $("read-all").addEventListener("click", async () => {
    await api("/api/v1/notifications/read-all", { method: "POST" });
    await loadNotifications();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      $("notifications").hidden = true;
      $("bell").setAttribute("aria-expanded", "false");
    }
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") markRead().catch(() => {});
  });
}

async function main() {
  wire();
  const params = new URLSearchParams(location.search);
  for (const name of ["transport", "protocol"]) {
    if (params.has(name)) $(name).value = params.get(name);
  }
  matchProtocolToTransport();
  state.config = await (await fetch("/demo/config")).json();
  for (const user of state.config.users) state.names.set(user.userId, user.name);
  if (!state.config.clientInstalled || !signalR) {
    $("client-missing").hidden = false;
    return;
  }
  const users = $("demo-users");
  for (const user of state.config.users) {
    users.append(
      el("button", { type: "button", "data-login": user.login, text: user.name, onclick: () => signIn({ login: user.login }) }),
    );
  }
  if (!state.config.signIn) {
    $("sign-in-hint").textContent = "Paste an access token for this server.";
    $("token-form").hidden = false;
  }
  const saved = JSON.parse(sessionStorage.getItem("hero-demo") ?? "null");
  const wanted = params.get("user");
  if (wanted && state.config.signIn) await signIn({ login: wanted });
  else if (saved?.login && state.config.signIn) await signIn({ login: saved.login });
  else if (saved?.token) await signIn({ token: saved.token });
}

main().catch((error) => {
  console.error(error);
  setStatus("offline", `error: ${error.message ?? error}`);
});
