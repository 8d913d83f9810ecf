// The chat page: sign-in, the conversation list, the transcript and the composer, speaking
// ChatKit's protocol to /chatkit as the ChatKit widget does.

import { ApiError, ChatApi, devToken, pageConfig, tokenClaims, userInput } from "./api.js";
import { Transcript } from "./transcript.js";
import { LiveTurn, TurnSnapshots } from "./turns.js";

const TOKEN_KEY = "chatrelay.token";
const MAX_ITEMS = 1000; // a thread longer than this shows its first items only

const $ = (id) => document.getElementById(id);
const view = {
  signin: $("signin"),
  signinForm: $("signin-form"),
  token: $("token"),
  devLogin: $("dev-login"),
  userName: $("user-name"),
  signinError: $("signin-error"),
  app: $("app"),
  who: $("who"),
  signout: $("signout"),
  newConversation: $("new-conversation"),
  threadList: $("thread-list"),
  threadsEmpty: $("threads-empty"),
  title: $("thread-title"),
  transcript: $("transcript"),
  status: $("status"),
  error: $("error"),
  composer: $("composer"),
  message: $("message"),
  send: $("send"),
  stop: $("stop"),
};

const state = {
  devLogin: false,
  api: null,
  snapshots: null,
  threads: [],
  threadId: null,
  turn: null, // the LiveTurn being shown, if any
  opening: 0, // bumps on every open, so a slow load never lands in a newer view
};
const transcript = new Transcript(view.transcript);

// ---- messages to the user ---------------------------------------------------------------

function showError(error) {
  view.error.replaceChildren();
  if (error === null) return;
  const message = error instanceof Error ? error.message : String(error);
  view.error.append(message);
  const correlationId = error.correlationId;
  if (correlationId && !message.includes(correlationId)) {
    const code = document.createElement("code");
    code.textContent = correlationId;
    view.error.append(" (correlation id: ", code, ")");
  }
}

function setStatus(text) {
  view.status.textContent = text;
}

function setStreaming(streaming) {
  view.send.hidden = streaming;
  view.stop.hidden = !streaming;
  view.stop.disabled = false;
  view.message.setAttribute("aria-busy", String(streaming));
}

// ---- sign-in ----------------------------------------------------------------------------

async function signIn(token) {
  const claims = tokenClaims(token);
  if (typeof claims.sub !== "string" || !claims.sub) throw new Error("the token names no user (no 'sub')");
  if (typeof claims.exp === "number" && claims.exp * 1000 < Date.now()) {
    throw new Error("that token has expired: mint a new one");
  }
  const api = new ChatApi(token, claims.sub);
  await loadThreads(api); // the server checks the token here
  state.api = api;
  state.snapshots = new TurnSnapshots(claims.sub);
  sessionStorage.setItem(TOKEN_KEY, token);
  view.who.textContent = claims.sub;
  view.signin.hidden = true;
  view.app.hidden = false;
  const threadId = decodeURIComponent(location.hash.slice(1));
  if (threadId) openThread(threadId).catch(handle);
  else newConversation();
}

function signOut(reason = "") {
  state.turn?.detach();
  state.turn = null;
  state.api = null;
  sessionStorage.removeItem(TOKEN_KEY);
  transcript.clear();
  view.app.hidden = true;
  view.signin.hidden = false;
  view.signinError.textContent = reason;
  view.token.value = "";
  view.token.focus();
}

async function onSignIn(event) {
  event.preventDefault();
  view.signinError.textContent = "";
  const token = view.token.value.trim();
  const userName = view.userName.value.trim();
  try {
    if (token) await signIn(token);
    else if (state.devLogin && userName) await signIn((await devToken(userName)).token);
    else throw new Error(state.devLogin ? "Paste a token, or give a user name." : "Paste a token.");
  } catch (error) {
    view.signinError.textContent =
      error instanceof ApiError && error.status === 401 ? `The server refused the token: ${error.message}` : error.message;
  }
}

/** Any answer 401 means the token is no good any more. */
function handle(error) {
  if (error instanceof DOMException && error.name === "AbortError") return;
  if (error instanceof ApiError && error.status === 401) {
    signOut(`Signed out: ${error.message}. Sign in again.`);
    return;
  }
  showError(error);
}

// ---- conversations ----------------------------------------------------------------------

async function loadThreads(api = state.api) {
  const page = await api.request("threads.list", { limit: 100, order: "desc" });
  state.threads = page.data;
  renderThreads();
}

function renderThreads() {
  const entries = state.threads.map((thread) => {
    const entry = document.createElement("li");
    const anchor = document.createElement("a");
    anchor.href = `#${encodeURIComponent(thread.id)}`;
    anchor.textContent = thread.title || "Untitled conversation";
    if (thread.id === state.threadId) anchor.setAttribute("aria-current", "page");
    entry.append(anchor);
    return entry;
  });
  view.threadList.replaceChildren(...entries);
  view.threadsEmpty.hidden = entries.length > 0;
}

function setThread(thread) {
  state.threadId = thread?.id ?? null;
  view.title.textContent = thread?.title || (thread ? "Untitled conversation" : "New conversation");
  renderThreads();
}

function rememberThread(thread) {
  const known = state.threads.findIndex((t) => t.id === thread.id);
  if (known === -1) state.threads.unshift(thread);
  else state.threads[known] = { ...state.threads[known], ...thread };
  if (thread.id === state.threadId) setThread(state.threads.find((t) => t.id === thread.id));
  else renderThreads();
}

function leaveTurn() {
  state.turn?.detach();
  state.turn = null;
  setStreaming(false);
  setStatus("");
}

function newConversation() {
  leaveTurn();
  state.opening += 1;
  history.replaceState(null, "", location.pathname);
  transcript.clear();
  showError(null);
  setThread(null);
  view.message.focus();
}

async function threadItems(threadId) {
  const thread = await state.api.request("threads.get_by_id", { thread_id: threadId });
  const items = [...thread.items.data];
  let page = thread.items;
  while (page.has_more && items.length < MAX_ITEMS) {
    page = await state.api.request("items.list", { thread_id: threadId, after: page.after, order: "asc" });
    items.push(...page.data);
  }
  return { thread, items };
}

async function openThread(threadId) {
  leaveTurn();
  const opening = ++state.opening;
  showError(null);
  transcript.clear();
  const snapshot = state.snapshots.get(threadId);
  let loaded;
  try {
    loaded = await threadItems(threadId);
  } catch (error) {
    // A new thread whose first turn is still running exists only in its stream.
    if (!(error instanceof ApiError && error.status === 404 && snapshot)) {
      if (opening === state.opening) handle(error);
      return;
    }
    loaded = { thread: { id: threadId, title: null }, items: [] };
  }
  if (opening !== state.opening) return;
  setThread(state.threads.find((t) => t.id === threadId) ?? loaded.thread);
  for (const item of loaded.items) transcript.upsert(item);
  if (snapshot) await resumeTurn(threadId, snapshot);
}

// ---- a turn -----------------------------------------------------------------------------

function applyEvent(turn, data) {
  switch (data.type) {
    case "thread.created":
      turn.threadId = data.thread.id;
      history.replaceState(null, "", `#${encodeURIComponent(data.thread.id)}`);
      state.threadId = data.thread.id;
      rememberThread(data.thread);
      break;
    case "thread.updated":
      rememberThread(data.thread);
      break;
    case "thread.item.added":
    case "thread.item.done":
      turn.itemIds.add(data.item.id);
      transcript.upsert(data.item, { done: data.type === "thread.item.done" });
      if (data.item.type === "assistant_message") setStatus("");
      break;
    case "thread.item.replaced":
      transcript.upsert(data.item);
      break;
    case "thread.item.updated":
      transcript.update(data.item_id, data.update);
      break;
    case "thread.item.removed":
      transcript.remove(data.item_id);
      break;
    case "progress_update":
      setStatus(data.text);
      break;
    case "notice":
      setStatus(data.message);
      break;
    case "error":
      showError(Object.assign(new Error(data.message || "The reply failed."), { correlationId: turn.correlationId }));
      break;
    default:
      break; // stream_options (Stop is always offered), client effects
  }
}

function makeTurn(options) {
  const turn = new LiveTurn({ api: state.api, snapshots: state.snapshots, transcript, ...options });
  turn.onEvent = (data) => applyEvent(turn, data);
  turn.onReconnecting = (on) => setStatus(on ? "Connection lost: resuming…" : "");
  state.turn = turn;
  setStreaming(true);
  return turn;
}

async function finish(turn, work) {
  try {
    await work();
    if (turn.controller.signal.aborted) return; // detached: its snapshot stays for later
    turn.forget();
  } catch (error) {
    if (turn.controller.signal.aborted) return; // detached: its snapshot stays for later
    turn.forget();
    handle(error);
  }
  if (state.turn !== turn) return;
  state.turn = null;
  setStreaming(false);
  setStatus("");
  loadThreads().catch(handle); // titles and order changed
  view.message.focus();
}

async function resumeTurn(threadId, snapshot) {
  for (const item of snapshot.items) transcript.upsert(item, { done: !snapshot.open?.includes(item.id) });
  const turn = makeTurn({
    threadId,
    lastEventId: snapshot.lastEventId,
    itemIds: snapshot.items.map((item) => item.id),
  });
  let resumed = true;
  await finish(turn, async () => {
    resumed = await turn.resume();
  });
  if (!resumed && state.turn === null && state.threadId === threadId) {
    // Too late to resume (the turn's events have expired): show the turn as stored.
    const opening = state.opening;
    const { items } = await threadItems(threadId).catch(() => ({ items: null }));
    if (items !== null && opening === state.opening && state.turn === null) {
      transcript.clear();
      for (const item of items) transcript.upsert(item);
    }
  }
}

async function send(event) {
  event.preventDefault();
  const text = view.message.value;
  if (!text.trim() || state.turn !== null || state.api === null) return;
  showError(null);
  view.message.value = "";
  const threadId = state.threadId;
  const turn = makeTurn({ threadId });
  setStatus("Sending…");
  await finish(turn, async () => {
    let response;
    try {
      response = threadId
        ? await state.api.stream(
            "threads.add_user_message",
            { thread_id: threadId, input: userInput(text) },
            turn.controller.signal,
          )
        : await state.api.stream("threads.create", { input: userInput(text) }, turn.controller.signal);
    } catch (error) {
      if (!view.message.value) view.message.value = text; // not sent: keep it for another try
      throw error;
    }
    setStatus("");
    await turn.run(response);
  });
}

async function stop() {
  const turn = state.turn;
  if (turn === null || turn.threadId === null) return;
  view.stop.disabled = true;
  setStatus("Stopping…");
  try {
    await state.api.cancel(turn.threadId);
  } catch (error) {
    // 409: it had ended already; the stream says how.
    if (!(error instanceof ApiError && error.status === 409)) handle(error);
  }
}

// ---- wiring -----------------------------------------------------------------------------

view.signinForm.addEventListener("submit", onSignIn);
view.signout.addEventListener("click", () => signOut(""));
view.newConversation.addEventListener("click", newConversation);
view.composer.addEventListener("submit", send);
view.stop.addEventListener("click", stop);
view.message.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    view.composer.requestSubmit();
  }
});
window.addEventListener("hashchange", () => {
  if (state.api === null) return;
  const threadId = decodeURIComponent(location.hash.slice(1));
  if (threadId && threadId !== state.threadId) openThread(threadId);
  else if (!threadId && state.threadId) newConversation();
});
// A reload or a closed tab mid-reply: keep where the stream had got to.
window.addEventListener("pagehide", () => state.turn?.save());

async function boot() {
  try {
    state.devLogin = Boolean((await pageConfig()).dev_login);
  } catch {
    state.devLogin = false;
  }
  view.devLogin.hidden = !state.devLogin;
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) {
    try {
      await signIn(token);
      return;
    } catch (error) {
      signOut(error instanceof ApiError ? `Sign in again: ${error.message}` : error.message);
      return;
    }
  }
  signOut("");
}

boot();
