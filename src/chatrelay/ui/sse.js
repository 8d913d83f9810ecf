// Server-Sent Events, parsed by hand from a fetch() body (EventSource can neither POST nor
// send an Authorization header). Follows the WHATWG "event stream interpretation": lines end
// in CRLF, LF or CR; `data` lines join with "\n"; `id` sticks until the next one; lines
// starting with ":" are comments (sse-starlette's keep-alive pings).

/** Parses chunks of text into events. `push(text)` returns the events it completed. */
export class EventStreamParser {
  constructor() {
    this.buffer = "";
    this.data = [];
    this.eventType = "";
    this.lastEventId = null;
  }

  push(text) {
    this.buffer += text;
    const events = [];
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.buffer);
      if (match === null) break;
      // A lone CR at the very end may be the first half of a CRLF: wait for the next chunk.
      if (match[0] === "\r" && match.index === this.buffer.length - 1) break;
      const line = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      const event = this.line(line);
      if (event !== null) events.push(event);
    }
    return events;
  }

  /** The stream ended: an event without its blank line is dropped, as the spec says. */
  end() {
    this.buffer = "";
    this.data = [];
    this.eventType = "";
  }

  line(line) {
    if (line === "") return this.dispatch();
    if (line.startsWith(":")) return null;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "id" && !value.includes("\0")) this.lastEventId = value;
    else if (field === "event") this.eventType = value;
    return null;
  }

  dispatch() {
    if (this.data.length === 0) {
      this.eventType = "";
      return null;
    }
    const event = {
      type: this.eventType || "message",
      data: this.data.join("\n"),
      id: this.lastEventId,
    };
    this.data = [];
    this.eventType = "";
    return event;
  }
}

/**
 * The events of a response body, as they arrive. A body that breaks off (a dropped
 * connection) rejects with the network error; one that ends cleanly just ends.
 */
export async function* readEvents(body) {
  const parser = new EventStreamParser();
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let finished = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      yield* parser.push(value);
    }
    finished = true;
    parser.end();
  } finally {
    // Left early (the reader stopped listening) or broken off: let the body go.
    if (!finished) await reader.cancel().catch(() => {});
  }
}
