"use strict";
import { renderMarkdown } from "/static/markdown.js";

const state = { battleId: null, texts: { a: "", b: "" }, votable: false, voted: false };
const $ = (sel) => document.querySelector(sel);

function setStatus(side, text) {
  document.querySelector(`.status[data-side="${side}"]`).textContent = text;
}

function render(side) {
  const box = document.querySelector(`.body[data-side="${side}"]`);
  box.replaceChildren(renderMarkdown(state.texts[side]));
}

function resetBattle() {
  Object.assign(state, { battleId: null, texts: { a: "", b: "" }, votable: false, voted: false });
  for (const side of ["a", "b"]) { render(side); setStatus(side, ""); }
  $("#votes").hidden = true;
  $("#reveal").hidden = true;
  $("#error").textContent = "";
  $("#category").disabled = false;
}

async function streamEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const chunk = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let name = "message", data = "";
      for (const line of chunk.split("\n")) {
        if (line.startsWith("event: ")) name = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      onEvent(name, JSON.parse(data));
    }
  }
}

async function send(event) {
  event.preventDefault();
  const prompt = $("#prompt").value;
  if (!prompt.trim() || state.voted) { if (state.voted) resetBattle(); else return; }
  $("#send").disabled = true;
  $("#error").textContent = "";
  const url = state.battleId ? `/api/battles/${state.battleId}/turns` : "/api/battles";
  const body = { prompt };
  if (!state.battleId && $("#category").value) body.category = $("#category").value;
  for (const side of ["a", "b"]) {
    if (state.texts[side]) state.texts[side] += "\n\n---\n\n";
    setStatus(side, "answering...");
  }
  try {
    const response = await fetch(url, {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
    });
    if (!response.ok) {
      const err = await response.json().catch(() => ({}));
      throw new Error(typeof err.detail === "string" ? err.detail : `request failed (${response.status})`);
    }
    $("#prompt").value = "";
    $("#category").disabled = true;
    await streamEvents(response, (name, data) => {
      if (name === "battle") state.battleId = data.battle_id;
      else if (name === "delta") { state.texts[data.side] += data.text; render(data.side); }
      else if (name === "done") setStatus(data.side, "");
      else if (name === "error") setStatus(data.side, data.message);
      else if (name === "end") { state.votable = data.votable; $("#votes").hidden = !data.votable; }
    });
  } catch (err) {
    $("#error").textContent = err.message;
  } finally {
    $("#send").disabled = false;
  }
}

async function vote(event) {
  const winner = event.target.dataset.winner;
  if (!winner || !state.battleId || state.voted) return;
  const response = await fetch(`/api/battles/${state.battleId}/vote`, {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ winner }),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) { $("#error").textContent = data.detail || "vote failed"; return; }
  state.voted = true;
  $("#votes").hidden = true;
  const reveal = $("#reveal");
  reveal.textContent = `Model A: ${data.model_a.display_name || data.model_a.name} | Model B: ${data.model_b.display_name || data.model_b.name}`;
  reveal.hidden = false;
  document.querySelector("#answer-a h2").textContent = `Model A: ${data.model_a.display_name || data.model_a.name}`;
  document.querySelector("#answer-b h2").textContent = `Model B: ${data.model_b.display_name || data.model_b.name}`;
}

$("#prompt-form").addEventListener("submit", send);
$("#votes").addEventListener("click", vote);
$("#new-battle").addEventListener("click", () => {
  resetBattle();
  document.querySelector("#answer-a h2").textContent = "Model A";
  document.querySelector("#answer-b h2").textContent = "Model B";
});
