// A minimal DOM for running study.html's script under node (tests/test_listen_study.py): elements by
// id, classList, click/change listeners, createElement/appendChild, localStorage. Usage:
//   node page_dom.js study.html rater
// prints JSON lines of what a rater sees while answering every trial, then using the end screen.
"use strict";
const fs = require("fs");
const src = fs.readFileSync(process.argv[2], "utf8");
const data = src.split('<script id="study-data" type="application/json">')[1].split("</script>")[0];
const script = src.split("<script>")[1].split("</script>")[0];
class El {
  constructor(id) { this.id = id; this.children = []; this.listeners = {}; this.cls = new Set(); this.textContent = "";
    this.value = ""; this.disabled = false; this.checked = false; this.src = ""; this.currentTime = 0;
    this.classList = { add: (c) => this.cls.add(c), remove: (c) => this.cls.delete(c), contains: (c) => this.cls.has(c) }; }
  set innerHTML(v) { this.children = []; }
  set className(v) { this.cls = new Set(v.split(" ")); }
  appendChild(c) { this.children.push(c); return c; }
  addEventListener(ev, f) { (this.listeners[ev] = this.listeners[ev] || []).push(f); }
  fire(ev) { (this.listeners[ev] || []).forEach((f) => f({ key: "Enter" })); }
  click() { if (!this.disabled) this.fire("click"); }
  remove() {} pause() {} play() {}
  all() { return this.children.flatMap((c) => [c, ...c.all()]); }
}
const els = {};
const hiddenAtStart = ["trial", "end"];
const document = {
  getElementById: (id) => { if (!els[id]) { els[id] = new El(id); if (hiddenAtStart.includes(id)) els[id].cls.add("hidden");
    if (id === "study-data") els[id].textContent = data; } return els[id]; },
  createElement: (tag) => new El(tag), createTextNode: (t) => ({ all: () => [], textContent: t }),
  body: new El("body"),
};
const store = {};
const localStorage = { getItem: (k) => (k in store ? store[k] : null), setItem: (k, v) => { store[k] = String(v); } };
const f = new Function("document", "localStorage", script);
f(document, localStorage);
const $ = (id) => document.getElementById(id);
const seen = () => ({ progress: $("progress").textContent, trial_hidden: $("trial").classList.contains("hidden"),
  end_hidden: $("end").classList.contains("hidden"), checked: $("questions").all().filter((x) => x.checked).map((x) => x.name + "=" + x.value) });
$("rater").value = process.argv[3]; $("begin").click();
const n = JSON.parse(data).trials.length;
for (let k = 0; k < n; k++) {
  const inputs = $("questions").all().filter((x) => x.type === "radio");
  const pick = (q, v) => { const x = inputs.find((i) => i.name === "q_" + q && i.value === v); x.checked = true; x.fire("change"); };
  pick("development", ["A", "B", "tie"][k % 3]); pick("preference", "A");
  $("next").click();
}
console.log(JSON.stringify({ step: "done", ...seen() }));
$("back").click(); console.log(JSON.stringify({ step: "back", ...seen() }));
$("next").click(); console.log(JSON.stringify({ step: "next", ...seen() }));
$("review").click(); console.log(JSON.stringify({ step: "review", ...seen() }));
