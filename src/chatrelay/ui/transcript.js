// A thread's items, kept as ChatKit sends them (ThreadItem JSON), and their DOM in the
// transcript. Stream events update the items at once; the DOM follows on the next animation
// frame, so a burst of text deltas costs one render.

import { renderMarkdown } from "./markdown.js";

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function userText(item) {
  return (item.content || [])
    .map((part) => (part.type === "input_tag" ? `@${part.text}` : part.text || ""))
    .join("");
}

function assistantText(item) {
  return (item.content || []).map((part) => part.text || "").join("");
}

function renderUser(item) {
  const node = el("article", "message user");
  node.append(el("div", "author", "You"), el("div", "body plain", userText(item)));
  return node;
}

function renderAssistant(item, open) {
  const node = el("article", open ? "message assistant streaming" : "message assistant");
  const body = el("div", "body markdown");
  body.append(renderMarkdown(assistantText(item)));
  node.append(el("div", "author", "chatrelay"), body);
  return node;
}

function renderWorkflow(item, open) {
  const workflow = item.workflow || { tasks: [] };
  const node = el("article", open ? "message workflow running" : "message workflow");
  const tasks = workflow.tasks || [];
  const heading = workflow.summary?.title || (open ? "Calling tools…" : "Tool calls");
  node.append(el("div", "workflow-summary", heading));
  const list = el("ul", "tasks");
  for (const task of tasks) {
    const done = task.status_indicator === "complete";
    const entry = el("li", done ? "task complete" : "task loading");
    entry.append(
      el("span", "task-status", done ? "✓" : "…"),
      el("span", "task-title", task.title || task.type || "tool"),
    );
    entry.setAttribute("aria-label", `${task.title || "tool"}: ${done ? "done" : "running"}`);
    if (task.content) {
      // What the tool returned, one click away (it is often a page of JSON).
      const result = el("details", "task-result");
      result.append(el("summary", undefined, "result"), el("code", undefined, task.content));
      entry.append(result);
    }
    list.append(entry);
  }
  node.append(list);
  return node;
}

export class Transcript {
  constructor(container) {
    this.container = container;
    this.items = new Map(); // id -> ThreadItem, in thread order
    this.open = new Set(); // ids added but not done yet (still streaming)
    this.nodes = new Map();
    this.dirty = new Set();
    this.frame = 0;
  }

  clear() {
    this.items.clear();
    this.open.clear();
    this.dirty.clear();
    this.nodes.clear();
    this.container.replaceChildren();
  }

  /** Adds an item, or replaces the one with its id (done: it is complete). */
  upsert(item, { done = true } = {}) {
    this.items.set(item.id, item);
    if (done) this.open.delete(item.id);
    else this.open.add(item.id);
    this.changed(item.id);
  }

  remove(itemId) {
    this.items.delete(itemId);
    this.open.delete(itemId);
    this.changed(itemId);
  }

  /** A `thread.item.updated` event's update. */
  update(itemId, update) {
    const item = this.items.get(itemId);
    if (item === undefined) return;
    const index = update.content_index ?? update.task_index;
    switch (update.type) {
      case "assistant_message.content_part.added":
      case "assistant_message.content_part.done":
        item.content = item.content || [];
        item.content[index] = update.content;
        break;
      case "assistant_message.content_part.text_delta":
        item.content = item.content || [];
        item.content[index] = item.content[index] || { type: "output_text", text: "" };
        item.content[index].text += update.delta;
        break;
      case "workflow.task.added":
      case "workflow.task.updated":
        item.workflow = item.workflow || { type: "custom", tasks: [] };
        item.workflow.tasks[index] = update.task;
        break;
      default:
        return; // annotations, widgets: nothing this page shows
    }
    this.changed(itemId);
  }

  /** The items with these ids, for a snapshot (JSON-safe copies). */
  pick(ids) {
    return [...ids].filter((id) => this.items.has(id)).map((id) => structuredClone(this.items.get(id)));
  }

  changed(itemId) {
    this.dirty.add(itemId);
    if (this.frame === 0) this.frame = requestAnimationFrame(() => this.render());
  }

  render() {
    this.frame = 0;
    const follow = this.atBottom();
    for (const id of this.dirty) {
      const item = this.items.get(id);
      const old = this.nodes.get(id);
      const node = item === undefined ? null : this.renderItem(item);
      if (node === null) {
        old?.remove();
        this.nodes.delete(id);
        continue;
      }
      node.dataset.itemId = id;
      if (old) old.replaceWith(node);
      else this.insert(id, node);
      this.nodes.set(id, node);
    }
    this.dirty.clear();
    if (follow) this.container.scrollTop = this.container.scrollHeight;
  }

  /** A new node goes where its item is in thread order (items are kept in that order). */
  insert(id, node) {
    const ids = [...this.items.keys()];
    for (let i = ids.indexOf(id) + 1; i < ids.length; i += 1) {
      const next = this.nodes.get(ids[i]);
      if (next) {
        next.before(node);
        return;
      }
    }
    this.container.append(node);
  }

  renderItem(item) {
    const open = this.open.has(item.id);
    switch (item.type) {
      case "user_message":
        return renderUser(item);
      case "assistant_message":
        return renderAssistant(item, open);
      case "workflow":
        return renderWorkflow(item, open);
      default:
        return null; // hidden context, end of turn, widgets: not shown
    }
  }

  atBottom() {
    const box = this.container;
    return box.scrollHeight - box.scrollTop - box.clientHeight < 48;
  }
}
