// chatrelay's HTTP API as the page uses it: ChatKit's request protocol at POST /chatkit
// (exactly what the ChatKit widget sends), plus the stop and resume endpoints the widget
// has no request type for.

/** An answer other than 2xx: its `detail` and the correlation id the server logged it under. */
export class ApiError extends Error {
  constructor(status, detail, correlationId) {
    super(detail);
    this.name = "ApiError";
    this.status = status;
    this.correlationId = correlationId;
  }
}

function detailText(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    // FastAPI's 422: [{loc, msg}], loc starting with "body".
    return detail
      .map((error) => {
        const where = (error.loc || []).filter((part) => part !== "body").join(".");
        return where ? `${where}: ${error.msg}` : String(error.msg);
      })
      .join("; ");
  }
  return JSON.stringify(detail);
}

async function check(response) {
  if (response.ok) return response;
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: a proxy's error page, say
  }
  const detail = body && body.detail !== undefined ? detailText(body.detail) : response.statusText;
  const correlationId = (body && body.correlation_id) || response.headers.get("x-request-id");
  throw new ApiError(response.status, detail || `HTTP ${response.status}`, correlationId);
}

/** A user message's input, as the widget builds it for threads.create and add_user_message. */
export function userInput(text) {
  return {
    content: [{ type: "input_text", text }],
    attachments: [],
    inference_options: {},
  };
}

export class ChatApi {
  /** @param {string} token a bearer token; @param {string} userId its subject */
  constructor(token, userId) {
    this.token = token;
    this.userId = userId;
  }

  headers(accept) {
    return {
      Authorization: `Bearer ${this.token}`,
      Accept: accept,
      "Content-Type": "application/json",
    };
  }

  /** A non-streaming ChatKit request (threads.list, threads.get_by_id...): its JSON. */
  async request(type, params) {
    const response = await fetch("/chatkit", {
      method: "POST",
      headers: this.headers("application/json"),
      body: JSON.stringify({ type, params }),
    });
    return (await check(response)).json();
  }

  /** A streaming ChatKit request (threads.create, threads.add_user_message): the response,
   * whose body is the turn's events. */
  async stream(type, params, signal) {
    const response = await fetch("/chatkit", {
      method: "POST",
      headers: this.headers("text/event-stream"),
      body: JSON.stringify({ type, params }),
      signal,
    });
    return check(response);
  }

  conversationUrl(threadId, what) {
    const user = encodeURIComponent(this.userId);
    return `/api/${user}/conversations/${encodeURIComponent(threadId)}/${what}`;
  }

  /** The running (or just finished) turn's events after `lastEventId`; null when there is
   * nothing to resume (no turn ran lately). */
  async resume(threadId, lastEventId, signal) {
    const headers = this.headers("text/event-stream");
    delete headers["Content-Type"];
    if (lastEventId !== null) headers["Last-Event-ID"] = lastEventId;
    const response = await fetch(this.conversationUrl(threadId, "stream"), { headers, signal });
    await check(response);
    return response.status === 204 ? null : response;
  }

  /** Stop the thread's running turn; its partial reply is kept. */
  async cancel(threadId) {
    const response = await fetch(this.conversationUrl(threadId, "cancel"), {
      method: "POST",
      headers: this.headers("application/json"),
    });
    return (await check(response)).json();
  }
}

/** The page's settings from the server: `{dev_login}`. */
export async function pageConfig() {
  const response = await fetch("/ui/config.json", { headers: { Accept: "application/json" } });
  return (await check(response)).json();
}

/** A development token for a user name (only when the server runs with DEV_LOGIN=true). */
export async function devToken(userId) {
  const response = await fetch("/auth/dev-token", {
    method: "POST",
    headers: { Accept: "application/json", "Content-Type": "application/json" },
    body: JSON.stringify({ user_id: userId }),
  });
  return (await check(response)).json();
}

/** The claims of a JWT (unverified: the server verifies it on every request). */
export function tokenClaims(token) {
  const parts = token.split(".");
  if (parts.length !== 3) throw new Error("that is not a token (expected three dot-separated parts)");
  try {
    const base64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (char) => char.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    if (typeof claims !== "object" || claims === null) throw new Error("not an object");
    return claims;
  } catch {
    throw new Error("that is not a token (its claims do not decode)");
  }
}
