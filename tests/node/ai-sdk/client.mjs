// The AI SDK's own client against a real `chatrelay serve`: `node client.mjs <scenario> <chatId> <text>`
// with CHATRELAY_URL and CHATRELAY_TOKEN set; prints one JSON result (tests/integration/test_node_ai_sdk.py).
// Every chunk is checked with the SDK's `uiMessageChunkSchema` (DefaultChatTransport parses
// with it too), and the reply is assembled by `readUIMessageStream`, as `useChat` does.
import { DefaultChatTransport, readUIMessageStream, uiMessageChunkSchema } from "ai";

const [scenario, chatId, text] = process.argv.slice(2);
const base = process.env.CHATRELAY_URL;
const headers = { Authorization: `Bearer ${process.env.CHATRELAY_TOKEN}` };
const transport = new DefaultChatTransport({ api: `${base}/ai-sdk/chat`, headers });
const schema = uiMessageChunkSchema();

const userMessage = { id: `u_${chatId}`, role: "user", parts: [{ type: "text", text }] };

function send(abortSignal) {
  return transport.sendMessages({
    chatId,
    messages: [userMessage],
    trigger: "submit-message",
    messageId: undefined,
    abortSignal,
  });
}

// Reads a chunk stream to its end (or `stopAt` returning true), validating every chunk;
// returns the chunks and the message readUIMessageStream built from them.
async function read(stream, stopAt = () => false) {
  const [forChunks, forMessage] = stream.tee();
  const chunks = [];
  const invalid = [];
  const messages = (async () => {
    let last = null;
    try {
      for await (const message of readUIMessageStream({ stream: forMessage })) last = message;
    } catch (error) {
      if (error?.name !== "AbortError") throw error;
    }
    return last;
  })();
  const reader = forChunks.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const checked = await schema.validate(value);
      if (!checked.success) invalid.push({ value, error: String(checked.error) });
      chunks.push(value);
      if (await stopAt(value, chunks)) break;
    }
  } catch (error) {
    if (error?.name !== "AbortError") throw error;
  }
  return { chunks, invalid, messages };
}

async function finished({ chunks, invalid, messages }) {
  return { chunks, invalid, message: await messages };
}

const scenarios = {
  async send() {
    return finished(await read(await send()));
  },
  async stop() {
    let cancel = null;
    const result = await read(await send(), async (chunk) => {
      if (chunk.type === "text-delta" && cancel === null) {
        const url = `${base}/api/${process.env.CHATRELAY_USER}/conversations/${chatId}/cancel`;
        const answer = await fetch(url, { method: "POST", headers });
        cancel = { status: answer.status, body: await answer.json() };
      }
      return false;
    });
    return { ...(await finished(result)), cancel };
  },
  async resume() {
    const before = await transport.reconnectToStream({ chatId });
    const abort = new AbortController();
    const first = await read(await send(abort.signal), (chunk) => chunk.type === "text-delta");
    abort.abort(); // the SDK's stop: the page leaves; the turn runs on
    const resumed = await transport.reconnectToStream({ chatId });
    if (resumed === null) return { before, firstChunks: first.chunks, resumed: null };
    const again = await finished(await read(resumed));
    return { before, firstChunks: first.chunks, ...again };
  },
  async reconnect() {
    const stream = await transport.reconnectToStream({ chatId });
    return stream === null ? { resumed: null } : { resumed: true, ...(await finished(await read(stream))) };
  },
  async abort() {
    const abort = new AbortController();
    const first = await read(await send(abort.signal), (chunk) => chunk.type === "text-delta");
    abort.abort();
    return { chunks: first.chunks, invalid: first.invalid };
  },
};

const result = await scenarios[scenario]();
process.stdout.write(JSON.stringify(result));
