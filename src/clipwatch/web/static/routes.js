// The route form's live preview: as the template (or a filter) changes, the form is sent to
// POST /routes/preview (debounced) and the answer, an HTML fragment the server rendered and
// escaped, replaces #preview. Progressive enhancement: the "Preview" button does the same
// without JavaScript. No inline script: the page's CSP allows scripts from /static only.
(function () {
  "use strict";
  var form = document.getElementById("route-form");
  var preview = document.getElementById("preview");
  if (!form || !preview || !window.fetch || !window.URLSearchParams) { return; }
  var WAIT_MS = 300;
  var timer = null;
  var sent = 0;   // the number of the latest request: an older answer never overwrites a newer one
  var shown = 0;

  function body() {
    var data = new URLSearchParams();
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name || el.disabled || el.type === "submit") { return; }
      if (el.name === "webhook_url") { return; }  // a secret the preview does not need
      if ((el.type === "checkbox" || el.type === "radio") && !el.checked) { return; }
      data.append(el.name, el.value);
    });
    if (!data.get("csrf")) {
      var meta = document.querySelector('meta[name="csrf-token"]');
      if (meta) { data.set("csrf", meta.getAttribute("content") || ""); }
    }
    return data;
  }

  function say(text) {
    var p = document.createElement("p");
    p.className = "hint";
    p.textContent = text;
    preview.replaceChildren(p);
  }

  function refresh() {
    var number = ++sent;
    window.fetch("/routes/preview", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "text/html" },
      body: body().toString()
    }).then(function (r) {
      if (r.redirected) { return { status: 401, html: "" }; }  // sent to the login page
      return r.text().then(function (html) { return { status: r.status, html: html }; });
    }).then(function (answer) {
      if (number < shown) { return; }
      shown = number;
      if (answer.status === 200 || answer.status === 422) {
        // Our own fragment: the server escaped every bit of it.
        preview.innerHTML = answer.html;
      } else if (answer.status === 401) {
        say("The preview needs you signed in: your session has ended. Log in again in another tab.");
      } else if (answer.status === 429) {
        say("The preview is paused: too many requests. Wait a moment, or press Preview.");
      } else {
        say("The preview is unavailable (" + answer.status + "). Press Preview, or reload the page.");
      }
    }).catch(function () {
      say("The preview is unavailable: the server did not answer. Press Preview to try again.");
    });
  }

  function later(event) {
    if (event.target && event.target.name === "webhook_url") { return; }
    if (timer !== null) { window.clearTimeout(timer); }
    timer = window.setTimeout(function () { timer = null; refresh(); }, WAIT_MS);
  }

  // Whether anything was changed from what the page came with: typed before this script ran.
  function edited() {
    return Array.prototype.some.call(form.elements, function (el) {
      if (!el.name || el.name === "webhook_url") { return false; }
      if (el.type === "checkbox" || el.type === "radio") { return el.checked !== el.defaultChecked; }
      if (el.options) {
        return Array.prototype.some.call(el.options, function (o) { return o.selected !== o.defaultSelected; });
      }
      return "defaultValue" in el && el.value !== el.defaultValue;
    });
  }

  form.addEventListener("input", later);
  form.addEventListener("change", later);
  // A script that arrives late (a busy server, a slow network) previews what was typed before.
  if (edited()) { refresh(); }
})();
