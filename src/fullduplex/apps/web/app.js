// The chat page: one WebSocket to /chat, the protocol of docs/chat-protocol.md.
// All user text goes into the page through textContent, never as HTML.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const els = {
    state: $("state"), stateText: $("state-text"), roomTitle: $("room-title"),
    joinView: $("join-view"), joinForm: $("join-form"), nick: $("nick"), room: $("room"),
    joinError: $("join-error"), chatView: $("chat-view"), members: $("members"),
    memberCount: $("member-count"), messages: $("messages"), typing: $("typing"),
    sendForm: $("send-form"), text: $("text"), leave: $("leave"), chatError: $("chat-error"),
  };

  // Reconnection back-off: exponential from BASE, capped at CAP, with jitter.
  const BACKOFF_BASE_MS = 500;
  const BACKOFF_CAP_MS = 10000;
  const TYPING_SEND_EVERY_MS = 2000;
  const TYPING_SHOW_MS = 3000;

  let ws = null;
  let attempt = 0;
  let retryTimer = null;
  let wanted = null;       // {room, nick} we want to be in, re-joined after a reconnect
  let joined = null;       // {room, nick} the server confirmed
  let rejoining = null;    // the room we were in when the connection dropped
  let lastTypingSent = 0;
  const seen = new Set();  // message ids already shown (history replays on re-join)
  const typingTimers = new Map();

  function chatURL() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + location.host + "/chat";
  }

  function setState(state, detail) {
    els.state.dataset.state = state;
    els.stateText.textContent = detail ? state + " " + detail : state;
  }

  function connect() {
    retryTimer = null;
    setState(attempt === 0 ? "connecting" : "reconnecting");
    let socket;
    try {
      socket = new WebSocket(chatURL());
    } catch (err) {
      scheduleReconnect();
      return;
    }
    ws = socket;
    socket.onopen = () => {
      attempt = 0;
      setState("open");
      if (wanted) send({ type: "join", room: wanted.room, nick: wanted.nick });
    };
    socket.onmessage = (event) => {
      let msg;
      try { msg = JSON.parse(event.data); } catch (err) { return; }
      handle(msg);
    };
    socket.onclose = () => {
      if (ws !== socket) return;
      ws = null;
      if (joined) {
        rejoining = joined.room;
        addNotice("Connection lost — reconnecting…", "lost");
      }
      joined = null;
      scheduleReconnect();
    };
  }

  function scheduleReconnect() {
    attempt += 1;
    const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** (attempt - 1));
    const delay = Math.round(ceiling / 2 + Math.random() * ceiling / 2);
    setState("reconnecting", "in " + Math.ceil(delay / 1000) + " s");
    retryTimer = setTimeout(connect, delay);
  }

  function send(msg) {
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(msg));
    return true;
  }

  function handle(msg) {
    switch (msg.type) {
      case "welcome":
        break;
      case "joined":
        onJoined(msg);
        break;
      case "presence":
        onPresence(msg);
        break;
      case "message":
        addMessage(msg);
        clearTyping(msg.nick);
        break;
      case "typing":
        onTyping(msg);
        break;
      case "left":
        break;
      case "error":
        onError(msg);
        break;
    }
  }

  function onJoined(msg) {
    joined = { room: msg.room, nick: msg.nick };
    wanted = { room: msg.room, nick: msg.nick };
    try {
      localStorage.setItem("fullduplex.nick", msg.nick);
      localStorage.setItem("fullduplex.room", msg.room);
    } catch (err) { /* storage may be unavailable */ }
    els.joinView.hidden = true;
    els.chatView.hidden = false;
    els.roomTitle.hidden = false;
    els.roomTitle.textContent = "#" + msg.room;
    document.title = "#" + msg.room + " · fullduplex chat";
    els.chatError.textContent = "";
    for (const item of msg.history || []) addMessage(item);
    addNotice(rejoining === msg.room ? "Reconnected — back in #" + msg.room
      : "You joined #" + msg.room + " as " + msg.nick);
    rejoining = null;
    setMembers(msg.members || []);
    els.text.focus();
  }

  function onPresence(msg) {
    setMembers(msg.members || []);
    if (joined && msg.nick === joined.nick) return;
    addNotice(msg.nick + (msg.event === "join" ? " joined" : " left"), msg.event);
    if (msg.event === "leave") clearTyping(msg.nick);
  }

  function onTyping(msg) {
    if (joined && msg.nick === joined.nick) return;
    clearTimeout(typingTimers.get(msg.nick));
    typingTimers.set(msg.nick, setTimeout(() => clearTyping(msg.nick), TYPING_SHOW_MS));
    renderTyping();
  }

  function clearTyping(nick) {
    if (!typingTimers.has(nick)) return;
    clearTimeout(typingTimers.get(nick));
    typingTimers.delete(nick);
    renderTyping();
  }

  function renderTyping() {
    const names = Array.from(typingTimers.keys());
    els.typing.textContent = names.length === 0 ? ""
      : names.length === 1 ? names[0] + " is typing…"
      : names.slice(0, 3).join(", ") + " are typing…";
  }

  function onError(msg) {
    const text = msg.message || msg.code;
    if (!joined) {
      els.joinError.textContent = text;
      if (msg.code === "nick_taken" || msg.code === "invalid_nick" || msg.code === "invalid_room") {
        wanted = null;
        showJoin();
      }
    } else {
      els.chatError.textContent = text;
    }
  }

  function setMembers(members) {
    els.members.replaceChildren();
    const sorted = members.slice().sort((a, b) => a.localeCompare(b));
    for (const nick of sorted) {
      const li = document.createElement("li");
      li.textContent = nick;
      if (joined && nick === joined.nick) li.classList.add("me");
      els.members.appendChild(li);
    }
    els.memberCount.textContent = String(members.length);
  }

  function atBottom() {
    const box = els.messages;
    return box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  }

  function append(li) {
    const stick = atBottom();
    els.messages.appendChild(li);
    while (els.messages.children.length > 500) els.messages.firstElementChild.remove();
    if (stick) els.messages.scrollTop = els.messages.scrollHeight;
  }

  function addMessage(msg) {
    if (msg.id) {
      if (seen.has(msg.id)) return;
      seen.add(msg.id);
    }
    const li = document.createElement("li");
    li.className = "msg";
    if (joined && msg.nick === joined.nick) li.classList.add("mine");
    const meta = document.createElement("div");
    meta.className = "meta";
    const who = document.createElement("span");
    who.className = "nick";
    who.textContent = msg.nick;
    const when = document.createElement("time");
    const date = new Date(msg.ts);
    when.dateTime = date.toISOString();
    when.textContent = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    meta.append(who, when);
    const body = document.createElement("div");
    body.className = "text";
    body.textContent = msg.text;
    li.append(meta, body);
    append(li);
  }

  function addNotice(text, kind) {
    const li = document.createElement("li");
    li.className = "notice" + (kind ? " " + kind : "");
    li.textContent = text;
    append(li);
  }

  function showJoin() {
    rejoining = null;
    joined = null;
    els.chatView.hidden = true;
    els.joinView.hidden = false;
    els.roomTitle.hidden = true;
    document.title = "fullduplex chat";
    els.nick.focus();
  }

  els.joinForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const nick = els.nick.value.trim();
    const room = els.room.value.trim();
    if (!nick || !room) return;
    els.joinError.textContent = "";
    wanted = { room, nick };
    if (!send({ type: "join", room, nick })) {
      els.joinError.textContent = "Not connected yet — joining as soon as the connection is open.";
    }
  });

  els.sendForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = els.text.value;
    if (!text.trim()) return;
    if (send({ type: "message", text })) {
      els.text.value = "";
      lastTypingSent = 0;
      els.chatError.textContent = "";
    } else {
      els.chatError.textContent = "Not connected — the message is kept; press Enter again once open.";
    }
  });

  els.text.addEventListener("input", () => {
    const now = Date.now();
    if (els.text.value && now - lastTypingSent > TYPING_SEND_EVERY_MS) {
      if (send({ type: "typing" })) lastTypingSent = now;
    }
  });

  els.leave.addEventListener("click", () => {
    send({ type: "leave" });
    wanted = null;
    els.messages.replaceChildren();
    seen.clear();
    showJoin();
  });

  try {
    els.nick.value = localStorage.getItem("fullduplex.nick") || "";
    els.room.value = localStorage.getItem("fullduplex.room") || els.room.value;
  } catch (err) { /* storage may be unavailable */ }

  connect();
})();
