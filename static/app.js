// The reading-room page: join a book's room, read its newest messages, load older ones a page
// at a time, see new ones and who is in the room, send with Enter, and come back after a lost
// connection without losing or repeating a message. Every piece of user content is put on the
// page with textContent, never as HTML.
//
// The rules it relies on are the server's contract (docs/API.md): `previousMessages` holds at
// most 50 messages, newest first; `loadHistory` pages older ones through its ack; `_id`s sort in
// room order; `userJoined`/`userLeft` are sent once per reader; after a reconnect that
// socket.io-client reports as recovered (`socket.recovered`), the server replays the missed
// `newMessage`s by itself and presence changes of the gap are not replayed.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const joinForm = $("join");
  const room = $("room");
  const scroller = $("scroller");
  const list = $("messages");
  const olderButton = $("older");
  const memberCountText = $("member-count");
  const memberList = $("member-list");
  const composer = $("composer");
  const content = $("content");
  const status = $("status");
  const title = $("room-title");
  const leaveButton = $("leave");

  /** The most messages `previousMessages` holds (docs/API.md, "Events the server sends"). */
  const PREVIOUS_MESSAGES = 50;
  /** How many older messages one "Load older messages" asks for (1 to 100). */
  const OLDER_PAGE = 50;
  const ACK_MS = 10000;

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
  const shown = new Set(); // the _ids on the page: each message is there once, in _id order
  let hasOlder = false; // whether the room may hold messages older than the oldest shown
  let loadingOlder = false;
  let members = []; // [{ userId?, username }]: the room's readers as last known (at most 100 listed)
  let memberCount = 0; // how many readers the room holds in all

  if (typeof io !== "function") {
    $("join-error").textContent =
      "The chat client could not be loaded (socket.io.min.js is missing on the server).";
    $("join-button").disabled = true;
    return;
  }
  const socket = io({ autoConnect: true });
  window.socket = socket; // for the browser tests, and for a look from the console

  function setStatus(text, online) {
    status.textContent = text;
    status.classList.toggle("online", online);
  }
  socket.on("connect", () => {
    setStatus("online", true);
    if (!joined) return;
    if (socket.recovered) {
      // Back in the room with the same session: the missed messages arrive as `newMessage`;
      // who came and went meanwhile is not replayed, so ask.
      refreshMembers();
    } else {
      join(joined.bookId, joined.username, true); // a new session: join again
    }
  });
  socket.on("disconnect", () => setStatus("reconnecting…", false));
  socket.io.on("reconnect_attempt", () => setStatus("reconnecting…", false));
  // A page that goes away cannot come back to its session (what recovers it lives in this
  // page's memory): leave cleanly, so the room sees the reader go now rather than when the
  // server's recovery window ends. A page restored from the back-forward cache connects anew.
  window.addEventListener("pagehide", () => socket.disconnect());
  window.addEventListener("pageshow", (event) => {
    if (event.persisted && !socket.connected) socket.connect();
  });

  function atBottom() {
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 40;
  }
  function scrollDown(force) {
    if (force || atBottom()) scroller.scrollTop = scroller.scrollHeight;
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

  /**
   * Put a message on the page at its place in room order (`_id` order), unless it is already
   * there. New messages go at the end; older ones (history pages) before the first newer one.
   * Returns whether it was added.
   */
  function placeMessage(m) {
    if (!m || typeof m._id !== "string" || shown.has(m._id)) return false;
    const li = messageItem(m);
    shown.add(m._id);
    list.querySelector(".empty")?.remove();
    // The first shown message whose _id sorts after m's (none: m goes at the end). An older
    // page's messages all sort before the oldest shown: no walk through the list for them.
    const first = list.querySelector(".msg");
    let next = null;
    if (first && first.dataset.id > m._id) {
      next = first;
    } else {
      for (let node = list.lastElementChild; node; node = node.previousElementSibling) {
        if (!node.classList.contains("msg")) continue;
        if (node.dataset.id > m._id) next = node;
        else break;
      }
    }
    list.insertBefore(li, next);
    return true;
  }
  function addMessage(m) {
    const stick = atBottom();
    if (placeMessage(m)) scrollDown(stick || m.userId === userId);
  }
  function addEvent(text) {
    const li = document.createElement("li");
    li.className = "event";
    li.textContent = text;
    const stick = atBottom();
    list.append(li);
    scrollDown(stick);
  }
  function clearMessages() {
    list.replaceChildren();
    shown.clear();
    setHasOlder(false);
  }
  function setHasOlder(more) {
    hasOlder = more;
    olderButton.hidden = !more;
  }
  function oldestShownId() {
    return list.querySelector(".msg")?.dataset.id;
  }
  function newestShownId() {
    const all = list.querySelectorAll(".msg");
    return all.length ? all[all.length - 1].dataset.id : undefined;
  }

  // Newest first on the wire; oldest first on the page.
  socket.on("previousMessages", (messages) => {
    if (!Array.isArray(messages)) return;
    const full = messages.length >= PREVIOUS_MESSAGES;
    if (shown.size === 0) {
      setHasOlder(full);
    } else if (full) {
      // A join again after a lost session: if the newest page does not reach the messages
      // shown, more may have been posted in between than it holds. Start again from it
      // rather than leave a hole; "Load older messages" pages back down.
      const oldest = messages[messages.length - 1];
      const newest = newestShownId();
      if (oldest && !shown.has(oldest._id) && newest !== undefined && oldest._id > newest) {
        clearMessages();
        setHasOlder(true);
      }
    }
    if (shown.size === 0 && messages.length === 0) {
      list.querySelector(".empty")?.remove();
      const li = document.createElement("li");
      li.className = "empty";
      li.textContent = "No messages yet. Say hello!";
      list.append(li);
      return;
    }
    for (const m of messages.slice().reverse()) placeMessage(m);
    scrollDown(true);
  });
  socket.on("newMessage", (m) => addMessage(m)); // the offset argument (recovery) is not ours
  socket.on("userJoined", (p) => {
    if (!p || typeof p.username !== "string") return;
    addEvent(`${p.username} joined`);
    members.push({ username: p.username });
    memberCount += 1;
    renderMembers();
  });
  socket.on("userLeft", (p) => {
    if (!p || typeof p.username !== "string") return;
    addEvent(`${p.username} left`);
    // The event names the reader by the name the room knows (that of the members list); two
    // readers of one name look the same, so removing either is right. Never this tab's entry.
    const at = members.findIndex((r) => r.username === p.username && r.userId !== userId);
    if (at >= 0) members.splice(at, 1);
    memberCount = Math.max(memberCount - 1, members.length);
    renderMembers();
  });
  socket.on("exception", (e) => showError(e && e.message));

  function showError(text) {
    $("error").textContent = text || "";
  }

  /** Show `readers` ([{ userId, username }], at most 100) of `count` readers in all. */
  function setMembers(readers, count) {
    if (!Array.isArray(readers)) return;
    members = readers.filter((r) => r && typeof r.username === "string");
    memberCount = Number.isSafeInteger(count) ? Math.max(count, members.length) : members.length;
    renderMembers();
  }
  function renderMembers() {
    memberCountText.textContent = String(memberCount);
    const items = members.map((r) => {
      const li = document.createElement("li");
      li.textContent = r.username + (r.userId === userId ? " (you)" : "");
      if (r.userId === userId) li.className = "me";
      return li;
    });
    if (memberCount > members.length) {
      const li = document.createElement("li");
      li.textContent = `and ${memberCount - members.length} more`;
      items.push(li);
    }
    memberList.replaceChildren(...items);
  }
  function clearMembers() {
    members = [];
    memberCount = 0;
    renderMembers();
  }

  /**
   * Ask the server with an ack; `answered` gets `{ ok, ... }` (a made-up failure when no answer
   * comes in time). The ack callback runs as its packet is read, so an event read after it
   * (e.g. `userJoined`) is applied after it.
   */
  function request(event, payload, answered) {
    socket.timeout(ACK_MS).emit(event, payload, (err, answer) => {
      if (err || !answer || typeof answer !== "object") {
        answered({ ok: false, error: { message: "no answer from the server" } });
      } else if (!answer.ok) {
        answered({ ok: false, error: { message: String(answer.error && answer.error.message) } });
      } else {
        answered(answer);
      }
    });
  }

  /** Join (or join again, `again`): resolves with whether the server said yes. */
  function join(bookId, username, again) {
    return new Promise((resolve) => {
      request("joinRoom", { bookId, userId, username }, (answer) => {
        if (!answer.ok) {
          if (again) showError(`Could not join the room again: ${answer.error.message}`);
          else $("join-error").textContent = answer.error.message;
        } else {
          setMembers(answer.members, answer.memberCount);
        }
        resolve(answer.ok);
      });
    });
  }

  function refreshMembers() {
    if (!joined) return;
    const asked = joined;
    request("roomMembers", { bookId: asked.bookId }, (answer) => {
      if (answer.ok && joined === asked) setMembers(answer.members, answer.memberCount);
    });
  }

  olderButton.addEventListener("click", () => {
    if (!joined || loadingOlder || !hasOlder) return;
    const asked = joined;
    const before = oldestShownId();
    loadingOlder = true;
    olderButton.disabled = true;
    olderButton.textContent = "Loading…";
    const payload = { bookId: asked.bookId, limit: OLDER_PAGE };
    if (before !== undefined) payload.before = before;
    request("loadHistory", payload, (answer) => {
      loadingOlder = false;
      olderButton.disabled = false;
      olderButton.textContent = "Load older messages";
      if (joined !== asked) return; // left (or switched rooms) meanwhile
      if (!answer.ok) {
        showError(`Could not load older messages: ${answer.error.message}`);
        return;
      }
      if (!Array.isArray(answer.messages)) return;
      // Keep what is on screen where it is while the page grows above it.
      const fromBottom = scroller.scrollHeight - scroller.scrollTop;
      list.setAttribute("aria-busy", "true");
      for (const m of answer.messages) placeMessage(m); // newest first: each goes above the last
      list.removeAttribute("aria-busy");
      scroller.scrollTop = scroller.scrollHeight - fromBottom;
      setHasOlder(answer.hasMore === true);
    });
  });

  joinForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const bookId = Number($("book").value.trim());
    const username = $("name").value.trim();
    $("join-error").textContent = "";
    if (!Number.isSafeInteger(bookId) || bookId < 1) {
      $("join-error").textContent = "The book id is a whole number, like 2701.";
      return;
    }
    clearMessages();
    if (!(await join(bookId, username, false))) return;
    joined = { bookId, username };
    localStorage.setItem("readrealm.book", String(bookId));
    localStorage.setItem("readrealm.name", username);
    title.textContent = `Book ${bookId}`;
    title.title = `Book ${bookId}, as ${username}`;
    joinForm.hidden = true;
    room.hidden = false;
    leaveButton.hidden = false;
    scrollDown(true);
    content.focus();
  });

  // Enter submits the form (a single-line input), which sends.
  composer.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = content.value.trim();
    if (!text || !joined) return;
    content.value = "";
    showError("");
    const answer = await new Promise((resolve) =>
      request("chatMessage", { ...joined, userId, content: text }, resolve),
    );
    if (!answer.ok) {
      showError(`Not sent: ${answer.error.message}`); // e.g. rate_limited
      if (!content.value) content.value = text; // give the text back to try again
    } else {
      addMessage(answer.message);
    }
  });

  leaveButton.addEventListener("click", async () => {
    if (!joined) return;
    const leaving = joined;
    joined = null;
    await new Promise((resolve) =>
      request("leaveRoom", { bookId: leaving.bookId, username: leaving.username }, resolve),
    );
    room.hidden = true;
    leaveButton.hidden = true;
    joinForm.hidden = false;
    title.textContent = "";
    clearMessages();
    clearMembers();
  });
})();
