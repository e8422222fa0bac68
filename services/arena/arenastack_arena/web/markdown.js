// Renders untrusted model text as a small Markdown subset by building DOM
// nodes with textContent only: no HTML string ever reaches the parser, so
// markup or script in an answer is shown as text and can never run.
"use strict";

const INLINE = /(\*\*[^*\n]+\*\*|__[^_\n]+__|`[^`\n]+`|\*[^*\n]+\*|\[[^\]\n]+\]\([^)\s]+\))/;

function appendInline(parent, text) {
  for (const part of text.split(INLINE)) {
    if (!part) continue;
    let node;
    if ((part.startsWith("**") && part.endsWith("**")) || (part.startsWith("__") && part.endsWith("__"))) {
      node = document.createElement("strong");
      node.textContent = part.slice(2, -2);
    } else if (part.startsWith("`") && part.endsWith("`") && part.length > 1) {
      node = document.createElement("code");
      node.textContent = part.slice(1, -1);
    } else if (part.startsWith("*") && part.endsWith("*") && part.length > 2) {
      node = document.createElement("em");
      node.textContent = part.slice(1, -1);
    } else if (/^\[[^\]]+\]\([^)]+\)$/.test(part)) {
      const m = part.match(/^\[([^\]]+)\]\(([^)]+)\)$/);
      if (/^https?:\/\//i.test(m[2])) {
        node = document.createElement("a");
        node.href = m[2];
        node.rel = "noopener noreferrer nofollow";
        node.target = "_blank";
        node.textContent = m[1];
      } else {
        node = document.createTextNode(part);
      }
    } else {
      node = document.createTextNode(part);
    }
    parent.appendChild(node);
  }
}

export function renderMarkdown(text) {
  const root = document.createElement("div");
  root.className = "md";
  const lines = text.split("\n");
  let list = null;
  let para = null;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.startsWith("```")) {
      const pre = document.createElement("pre");
      const code = document.createElement("code");
      const body = [];
      for (i++; i < lines.length && !lines[i].startsWith("```"); i++) body.push(lines[i]);
      code.textContent = body.join("\n");
      pre.appendChild(code);
      root.appendChild(pre);
      list = para = null;
      continue;
    }
    const header = line.match(/^(#{1,6})\s+(.*)$/);
    const item = line.match(/^\s*([-*+]|\d+\.)\s+(.*)$/);
    if (header) {
      const h = document.createElement("h" + Math.min(6, header[1].length + 2));
      appendInline(h, header[2]);
      root.appendChild(h);
      list = para = null;
    } else if (item) {
      const ordered = /\d/.test(item[1]);
      if (!list || (list.tagName === "OL") !== ordered) {
        list = document.createElement(ordered ? "ol" : "ul");
        root.appendChild(list);
      }
      const li = document.createElement("li");
      appendInline(li, item[2]);
      list.appendChild(li);
      para = null;
    } else if (!line.trim()) {
      list = para = null;
    } else {
      if (!para) {
        para = document.createElement("p");
        root.appendChild(para);
      } else {
        para.appendChild(document.createElement("br"));
      }
      appendInline(para, line);
      list = null;
    }
  }
  return root;
}
