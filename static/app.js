// The reading-room page: join a book's room, read its newest messages, see new ones and
// who comes and goes, send with Enter. Every piece of user content is put on the page with
// textContent, never as HTML.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const joinForm = $("join");
  const room = $("room");
  const list = $("messages");
  const composer = $("composer");
  const content = $("content");
  const status = $("status");
  const title = $("room-title");
  const leaveButton = $("leave");

  // One userId per browser tab: the server binds it to the connection on the first join.
  let userId = sessionStorage.getItem("readrealm.userId");
  if (!userId) {
    const bytes = new Uint8Array(8);
    crypto.getRandomValues(bytes);
    userId = "web-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    sessionStorage.setItem("readrealm.userId", userId);
  }

  const params = new URLSearchParams(location.search);
  $("book").value = params.get("book") || localStorage.getItem("readrealm.book") || "";
  $("name").value = params.get("name") || localStorage.getItem("readrealm.name") || "";

  let joined = null; // { bookId, username } once in a room
  const seen = new Set(); // message ids shown, so a re-join after a reconnect adds no duplicates

  if (typeof io !== "function") {
    $("join-error").textContent =
      "The chat client could not be loaded (socket.io.min.js is missing on the server).";
    $("join-button").disabled = true;
    return;
  }
  const socket = io({ autoConnect: true });

  function setStatus(text, online) {
    status.textContent = text;
    status.classList.toggle("online", online);
  }
  socket.on("connect", () => {
    setStatus("online", true);
    if (joined) join(joined.bookId, joined.username); // a new connection: join again
  });
  socket.on("disconnect", () => setStatus("reconnecting…", false));
  socket.io.on("reconnect_attempt", () => setStatus("reconnecting…", false));

  function atBottom() {
    return list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  }
  function scrollDown(force) {
    if (force || atBottom()) list.scrollTop = list.scrollHeight;
  }
  function time(iso) {
    const at = new Date(iso);
    return isNaN(at) ? "" : at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function messageItem(m) {
    const li = document.createElement("li");
    li.className = "msg" + (m.userId === userId ? " mine" : "");
    li.dataset.id = m._id;
    const meta = document.createElement("div");
    meta.className = "meta";
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = String(m.username);
    const when = document.createElement("time");
    when.dateTime = String(m.createdAt);
    when.textContent = time(m.createdAt);
    meta.append(who, when);
    const text = document.createElement("div");
    text.className = "text";
    text.textContent = String(m.content);
    li.append(meta, text);
    return li;
  }
  function addMessage(m) {
    if (!m || seen.has(m._id)) return;
    seen.add(m._id);
    list.querySelector(".empty")?.remove();
    const stick = atBottom();
    list.append(messageItem(m));
    scrollDown(stick || m.userId === userId);
  }
  function addEvent(text) {
    const li = document.createElement("li");
    li.className = "event";
    li.textContent = text;
    const stick = atBottom();
    list.append(li);
    scrollDown(stick);
  }

  socket.on("previousMessages", (messages) => {
    if (!Array.isArray(messages)) return;
    if (seen.size === 0 && messages.length === 0) {
      list.replaceChildren();
      const li = document.createElement("li");
      li.className = "empty";
      li.textContent = "No messages yet. Say hello!";
      list.append(li);
      return;
    }
    // Newest first on the wire; oldest first on the page.
    for (const m of messages.slice().reverse()) addMessage(m);
    scrollDown(true);
  });
  socket.on("newMessage", addMessage);
  socket.on("userJoined", (p) => addEvent(`${p && p.username} joined`));
  socket.on("userLeft", (p) => addEvent(`${p && p.username} left`));
  socket.on("exception", (e) => showError(e && e.message));

  function showError(text) {
    $("error").textContent = text || "";
  }

  async function join(bookId, username) {
    const answer = await socket
      .timeout(10000)
      .emitWithAck("joinRoom", { bookId, userId, username })
      .catch(() => ({ ok: false, error: { message: "no answer from the server" } }));
    if (!answer.ok) {
      $("join-error").textContent = answer.error.message;
      return false;
    }
    return true;
  }

  joinForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const bookId = Number($("book").value.trim());
    const username = $("name").value.trim();
    $("join-error").textContent = "";
    if (!Number.isSafeInteger(bookId) || bookId < 1) {
      $("join-error").textContent = "The book id is a whole number, like 2701.";
      return;
    }
    list.replaceChildren();
    seen.clear();
    if (!(await join(bookId, username))) return;
    joined = { bookId, username };
    localStorage.setItem("readrealm.book", String(bookId));
    localStorage.setItem("readrealm.name", username);
    title.textContent = `Book ${bookId}`;
    title.title = `Book ${bookId}, as ${username}`;
    joinForm.hidden = true;
    room.hidden = false;
    leaveButton.hidden = false;
    content.focus();
  });

  // Enter submits the form (a single-line input), which sends.
  composer.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = content.value.trim();
    if (!text || !joined) return;
    content.value = "";
    showError("");
    const answer = await socket
      .timeout(10000)
      .emitWithAck("chatMessage", { ...joined, userId, content: text })
      .catch(() => ({ ok: false, error: { message: "not sent: no answer from the server" } }));
    if (!answer.ok) {
      showError(answer.error.message);
      if (!content.value) content.value = text; // give the text back to try again
    } else {
      addMessage(answer.message);
    }
  });

  leaveButton.addEventListener("click", async () => {
    if (!joined) return;
    const leaving = joined;
    joined = null;
    await socket
      .timeout(5000)
      .emitWithAck("leaveRoom", { bookId: leaving.bookId, username: leaving.username })
      .catch(() => null);
    room.hidden = true;
    leaveButton.hidden = true;
    joinForm.hidden = false;
    title.textContent = "";
    list.replaceChildren();
    seen.clear();
  });
})();
