// The demo's Discord page: new messages every few seconds, in place. The page works without
// this file (the Reload link); it only swaps in the message list of a fresh copy of the page.
(function () {
  "use strict";
  var list = document.getElementById("demo-messages");
  if (!list || !window.fetch) { return; }
  var EVERY_MS = 5000;
  function refresh() {
    if (document.hidden) { return; }
    window.fetch("/demo/discord", { headers: { Accept: "text/html" } })
      .then(function (r) { if (!r.ok) { throw new Error(String(r.status)); } return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("demo-messages");
        var title = doc.getElementById("messages-title");
        if (fresh && fresh.innerHTML !== list.innerHTML) {
          list.innerHTML = fresh.innerHTML;
          var here = document.getElementById("messages-title");
          if (title && here) { here.textContent = title.textContent; }
        }
      })
      .catch(function () { /* the Reload link still works */ });
  }
  window.setInterval(refresh, EVERY_MS);
})();
