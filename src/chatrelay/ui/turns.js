// Following one turn's stream, and picking it up again: after a dropped connection (resume by
// Last-Event-ID, with backoff) or after a reload (from a snapshot kept in sessionStorage).

import { ApiError } from "./api.js";
import { readEvents } from "./sse.js";

const RESUME_DELAYS_MS = [250, 500, 1000, 2000, 4000, 8000];
const SNAPSHOT_EVERY_MS = 250;

/** What a reload needs to pick a running turn up: its items so far and the last event id
 * they include, per thread, for this tab (sessionStorage). */
export class TurnSnapshots {
  constructor(userId) {
    this.key = `chatrelay.turns.${userId}`;
  }

  all() {
    try {
      return JSON.parse(sessionStorage.getItem(this.key) || "{}");
    } catch {
      return {};
    }
  }

  get(threadId) {
    return this.all()[threadId] ?? null;
  }

  put(threadId, snapshot) {
    const all = this.all();
    all[threadId] = snapshot;
    sessionStorage.setItem(this.key, JSON.stringify(all));
  }

  drop(threadId) {
    const all = this.all();
    delete all[threadId];
    sessionStorage.setItem(this.key, JSON.stringify(all));
  }
}

function isAbort(error) {
  return error instanceof DOMException && error.name === "AbortError";
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(new DOMException("aborted", "AbortError"));
    });
  });
}

/**
 * A turn this page is showing. `onEvent(data)` applies each ChatKit event; `onReconnecting`
 * says the connection dropped and a resume is under way.
 */
export class LiveTurn {
  constructor({ api, snapshots, transcript, threadId = null, lastEventId = null, itemIds = [] }) {
    this.api = api;
    this.snapshots = snapshots;
    this.transcript = transcript;
    this.threadId = threadId;
    this.lastEventId = lastEventId;
    this.itemIds = new Set(itemIds);
    this.controller = new AbortController();
    this.correlationId = null;
    this.savedAt = 0;
    this.onEvent = () => {};
    this.onReconnecting = () => {};
  }

  /** Stop listening (another thread was opened, the user signed out). The turn runs on
   * server-side; its snapshot stays, so coming back resumes it. */
  detach() {
    this.save();
    this.controller.abort();
  }

  /** Follow `response`, resuming after drops, until the turn's stream ends. */
  async run(response) {
    this.correlationId = response?.headers.get("x-request-id") ?? null;
    let current = response;
    for (;;) {
      if (current === null) return; // nothing (more) to resume: the turn is over
      try {
        await this.follow(current);
        return;
      } catch (error) {
        if (this.controller.signal.aborted || isAbort(error)) throw error;
        if (error instanceof ApiError) throw error;
        if (this.threadId === null) throw error; // dropped before the thread existed
      }
      current = await this.reconnect();
    }
  }

  async follow(response) {
    for await (const event of readEvents(response.body)) {
      if (this.controller.signal.aborted) return;
      let data;
      try {
        data = JSON.parse(event.data);
      } catch {
        continue; // not one of ours
      }
      this.onEvent(data);
      if (event.id !== null) this.lastEventId = event.id;
      this.maybeSave();
    }
  }

  async reconnect() {
    let lastError = null;
    for (const delay of RESUME_DELAYS_MS) {
      this.onReconnecting(true);
      await sleep(delay, this.controller.signal);
      try {
        const response = await this.api.resume(this.threadId, this.lastEventId, this.controller.signal);
        this.onReconnecting(false);
        return response;
      } catch (error) {
        if (isAbort(error) || (error instanceof ApiError && error.status < 500)) throw error;
        lastError = error;
      }
    }
    this.onReconnecting(false);
    throw lastError ?? new Error("the connection was lost");
  }

  /** Resume a turn known from a snapshot (after a reload). */
  async resume() {
    const response = await this.api.resume(this.threadId, this.lastEventId, this.controller.signal);
    if (response === null) return false;
    await this.run(response);
    return true;
  }

  maybeSave() {
    const now = Date.now();
    if (now - this.savedAt >= SNAPSHOT_EVERY_MS) this.save();
  }

  /** Items and the last event id they include, together: a reload resumes right after it. */
  save() {
    if (this.threadId === null) return;
    this.savedAt = Date.now();
    this.snapshots.put(this.threadId, {
      lastEventId: this.lastEventId,
      items: this.transcript.pick(this.itemIds),
      open: [...this.itemIds].filter((id) => this.transcript.open.has(id)),
    });
  }

  forget() {
    if (this.threadId !== null) this.snapshots.drop(this.threadId);
  }
}
