// Markdown for model text, built with DOM APIs only: every piece of text becomes a text node,
// so nothing the model (or a user it echoes) writes can become markup or script. There is no
// innerHTML anywhere on this page. Raw HTML shows as the text it is; links keep only http(s)
// and mailto addresses (a `javascript:` or `data:` link is rendered as inert text); images
// become links to their address, so text never makes the page fetch anything.
//
// The subset: paragraphs (a single newline is a line break, as in chat), headings, fenced
// code blocks, block quotes, bullet and numbered lists (nested by indentation),
// rules, `code`, **strong**, *emphasis*, ~~strike~~, [links](https://...), <autolinks> and
// bare https:// addresses. Unclosed syntax (mid-stream) shows literally until it closes.

const SAFE_PROTOCOLS = new Set(["http:", "https:", "mailto:"]);
const MAX_DEPTH = 12; // nesting beyond this is shown as text: no pathological recursion

/** The address if it is safe to link to (http, https, mailto; relative resolves to this
 * origin), else null. URL() strips what browsers strip ("java\tscript:", leading spaces). */
export function safeUrl(href) {
  let url;
  try {
    url = new URL(href.trim(), document.baseURI);
  } catch {
    return null;
  }
  return SAFE_PROTOCOLS.has(url.protocol) ? url.href : null;
}

function el(tag, className) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  return node;
}

// ---- inline ----------------------------------------------------------------------------

const ESCAPE = /\\([!-/:-@[-`{-~])/y;
const CODE = /(`+)(?!`)([\s\S]*?[^`])\1(?!`)/y;
const LINK =
  /(!?)\[([^\]\n]*)\]\(\s*(<[^>\n]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)(?:\s+(?:"[^"\n]*"|'[^'\n]*'))?\s*\)/y;
const AUTOLINK = /<((?:https?|mailto):[^\s<>]+)>/y;
const BARE_URL = /https?:\/\/[^\s<>]*[^\s<>.,:;"'!?)\]*_~]/y;
const STRIKE = /~~(?=\S)([\s\S]*?\S)~~/y;
const WORD = /[\p{L}\p{N}]/u;
const PUNCTUATION = /[\p{P}\p{S}]/u;
const SPACE = /\s/;

function at(regex, text, index) {
  regex.lastIndex = index;
  return regex.exec(text);
}

function link(parent, label, href, { image, depth }) {
  const url = safeUrl(href.replace(/^<|>$/g, ""));
  if (url === null) {
    const inert = el("span", "inert-link");
    inert.title = "link removed: not an http(s) or mailto address";
    inline(inert, label, depth + 1, true);
    parent.append(inert);
    return;
  }
  const anchor = el("a", image ? "image-link" : undefined);
  anchor.href = url;
  anchor.rel = "noopener noreferrer nofollow";
  anchor.target = "_blank";
  if (image) anchor.append(label ? `[image: ${label}]` : "[image]");
  else inline(anchor, label || url, depth + 1, true);
  parent.append(anchor);
}

/** Appends `text`'s inline Markdown to `parent`. */
export function inline(parent, text, depth = 0, inLink = false) {
  if (depth > MAX_DEPTH) {
    parent.append(text);
    return;
  }
  let plain = "";
  const flush = () => {
    if (plain) parent.append(plain);
    plain = "";
  };
  const wrap = (tag, inner, next) => {
    flush();
    const node = el(tag);
    inline(node, inner, depth + 1, inLink);
    parent.append(node);
    return next;
  };
  let i = 0;
  while (i < text.length) {
    const char = text[i];
    const before = i > 0 ? text[i - 1] : " ";
    let m;
    if (char === "\\" && (m = at(ESCAPE, text, i))) {
      plain += m[1];
      i += m[0].length;
    } else if (char === "\n") {
      flush();
      parent.append(el("br"));
      i += 1;
    } else if (char === "`" && (m = at(CODE, text, i))) {
      flush();
      const code = el("code");
      code.textContent = m[2].length > 2 && /^ .* $/s.test(m[2]) ? m[2].slice(1, -1) : m[2];
      parent.append(code);
      i += m[0].length;
    } else if (!inLink && (char === "[" || char === "!") && (m = at(LINK, text, i))) {
      flush();
      link(parent, m[2], m[3], { image: m[1] === "!", depth });
      i += m[0].length;
    } else if (!inLink && char === "<" && (m = at(AUTOLINK, text, i))) {
      flush();
      link(parent, m[1], m[1], { image: false, depth });
      i += m[0].length;
    } else if (!inLink && char === "h" && !WORD.test(before) && (m = at(BARE_URL, text, i))) {
      flush();
      link(parent, m[0], m[0], { image: false, depth });
      i += m[0].length;
    } else if (char === "*" || char === "_") {
      const found = emphasis(text, i);
      if (found === null) {
        const run = delimiterRun(text, i);
        plain += text.slice(i, i + run);
        i += run;
      } else {
        i = wrap(found.tag, text.slice(found.start, found.end), found.next);
      }
    } else if (char === "~" && (m = at(STRIKE, text, i))) {
      i = wrap("del", m[1], i + m[0].length);
    } else {
      plain += char;
      i += 1;
    }
  }
  flush();
}

// Emphasis by CommonMark's flanking rules, so `a * b * c`, snake_case_names and
// `window.__name` stay as they are: a run of `*` or `_` opens when it leans on the text after
// it, closes when it leans on the text before it, and `_` never does either inside a word.

function delimiterRun(text, index) {
  let end = index;
  while (text[end] === text[index]) end += 1;
  return end - index;
}

function leftFlanking(before, after) {
  return !SPACE.test(after) && (!PUNCTUATION.test(after) || SPACE.test(before) || PUNCTUATION.test(before));
}

function rightFlanking(before, after) {
  return !SPACE.test(before) && (!PUNCTUATION.test(before) || SPACE.test(after) || PUNCTUATION.test(after));
}

function canOpen(char, before, after) {
  const left = leftFlanking(before, after);
  return char === "*" ? left : left && (!rightFlanking(before, after) || PUNCTUATION.test(before));
}

function canClose(char, before, after) {
  const right = rightFlanking(before, after);
  return char === "*" ? right : right && (!leftFlanking(before, after) || PUNCTUATION.test(after));
}

/** The emphasis opened at `index` (strong for a double delimiter), or null. */
function emphasis(text, index) {
  const char = text[index];
  const run = delimiterRun(text, index);
  const before = index > 0 ? text[index - 1] : " ";
  if (!canOpen(char, before, text[index + run] ?? " ")) return null;
  for (const size of run >= 2 ? [2, 1] : [1]) {
    const start = index + size;
    // A closer is a whole run of the same character, judged by what is either side of it.
    for (let j = start + 1; j < text.length; ) {
      if (text[j] !== char || text[j - 1] === "\\") {
        j += 1;
        continue;
      }
      const length = delimiterRun(text, j);
      if (length >= size && canClose(char, text[j - 1], text[j + length] ?? " ")) {
        return { tag: size === 2 ? "strong" : "em", start, end: j, next: j + size };
      }
      j += length;
    }
  }
  return null;
}

// ---- blocks ----------------------------------------------------------------------------

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)/;
const HEADING = /^ {0,3}(#{1,6})(?:\s+(.*?))?(?:\s+#+)?\s*$/;
const RULE = /^ {0,3}([-*_])(?:\s*\1){2,}\s*$/;
const QUOTE = /^ {0,3}> ?(.*)$/;
const ITEM = /^( {0,3})([-*+]|\d{1,9}[.)])\s+(.*)$/;

function startsBlock(line) {
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) || ITEM.test(line);
}

function blank(line) {
  return /^\s*$/.test(line);
}

function codeBlock(lines, i, fence, language) {
  const body = [];
  let j = i + 1;
  // An unclosed fence (the reply is still streaming) runs to the end.
  while (j < lines.length && !lines[j].trimStart().startsWith(fence)) body.push(lines[j++]);
  const pre = el("pre");
  const code = el("code");
  if (language) code.dataset.language = language;
  code.textContent = body.join("\n");
  pre.append(code);
  return [pre, j + 1];
}

function quote(lines, i, depth) {
  const inner = [];
  let j = i;
  while (j < lines.length && !blank(lines[j])) {
    const m = QUOTE.exec(lines[j]);
    if (m === null && startsBlock(lines[j])) break;
    inner.push(m === null ? lines[j] : m[1]);
    j += 1;
  }
  const node = el("blockquote");
  node.append(blocks(inner, depth + 1));
  return [node, j];
}

function list(lines, i, depth) {
  const first = ITEM.exec(lines[i]);
  const ordered = /\d/.test(first[2]);
  const node = el(ordered ? "ol" : "ul");
  if (ordered && parseInt(first[2], 10) !== 1) node.start = parseInt(first[2], 10);
  let j = i;
  while (j < lines.length) {
    const m = ITEM.exec(lines[j]);
    if (m === null || /\d/.test(m[2]) !== ordered) break;
    const indent = m[1].length + m[2].length + 1;
    const content = [m[3]];
    j += 1;
    while (j < lines.length) {
      const line = lines[j];
      const indented = /^\s{2,}\S/.test(line);
      if (blank(line)) {
        if (j + 1 < lines.length && /^\s{2,}\S/.test(lines[j + 1])) {
          content.push("");
          j += 1;
          continue;
        }
        break;
      }
      if (indented) content.push(line.replace(new RegExp(`^ {0,${indent}}`), ""));
      else if (!startsBlock(line)) content.push(line); // a lazy continuation
      else break;
      j += 1;
    }
    const item = el("li");
    const rendered = blocks(content, depth + 1);
    // In a tight list (no blank line inside the item) its text is not a paragraph.
    if (!content.includes("") && rendered.firstChild?.nodeName === "P") {
      rendered.firstChild.replaceWith(...rendered.firstChild.childNodes);
    }
    item.append(rendered);
    node.append(item);
    while (j < lines.length && blank(lines[j]) && j + 1 < lines.length && ITEM.test(lines[j + 1])) {
      j += 1;
    }
  }
  return [node, j];
}

function blocks(lines, depth) {
  const fragment = document.createDocumentFragment();
  if (depth > MAX_DEPTH) {
    const p = el("p");
    p.append(lines.join("\n"));
    fragment.append(p);
    return fragment;
  }
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    let m;
    let node;
    if (blank(line)) {
      i += 1;
      continue;
    }
    if ((m = FENCE.exec(line))) {
      [node, i] = codeBlock(lines, i, m[1], m[2]);
    } else if ((m = HEADING.exec(line))) {
      node = el(`h${Math.min(m[1].length + 2, 6)}`);
      inline(node, m[2] || "", depth);
      i += 1;
    } else if (RULE.test(line)) {
      node = el("hr");
      i += 1;
    } else if (QUOTE.test(line)) {
      [node, i] = quote(lines, i, depth);
    } else if (ITEM.test(line)) {
      [node, i] = list(lines, i, depth);
    } else {
      const paragraph = [line];
      i += 1;
      while (i < lines.length && !blank(lines[i]) && !startsBlock(lines[i])) paragraph.push(lines[i++]);
      node = el("p");
      inline(node, paragraph.join("\n"), depth);
    }
    fragment.append(node);
  }
  return fragment;
}

/** Model text as a fragment of safe DOM nodes. */
export function renderMarkdown(text) {
  return blocks(String(text).replace(/\r\n?/g, "\n").split("\n"), 0);
}
