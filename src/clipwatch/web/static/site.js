// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";
  // Leave empty filters out of the URL so a shared search link stays short.
  var form = document.getElementById("search-form");
  if (form) {
    form.addEventListener("submit", function () {
      Array.prototype.forEach.call(form.elements, function (el) {
        if (el.name && el.value === "") { el.disabled = true; }
      });
      window.setTimeout(function () {
        Array.prototype.forEach.call(form.elements, function (el) { el.disabled = false; });
      }, 0);
    });
  }
  // "More clips" loads the next page in place (the link still works without JavaScript).
  var list = document.getElementById("results");
  function wire(link) {
    if (!link || !list || !window.fetch) { return; }
    link.addEventListener("click", function (event) {
      event.preventDefault();
      link.textContent = "Loading…";
      window.fetch(link.href, { headers: { Accept: "text/html" } })
        .then(function (r) { if (!r.ok) { throw new Error(String(r.status)); } return r.text(); })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          var cards = doc.querySelectorAll("#results > li");
          Array.prototype.forEach.call(cards, function (c) { list.appendChild(document.adoptNode(c)); });
          var next = doc.getElementById("more");
          var holder = link.parentNode;
          if (next) { link.href = next.href; link.textContent = "More clips"; }
          else { holder.parentNode.removeChild(holder); }
        })
        .catch(function () { window.location.href = link.href; });
    });
  }
  wire(document.getElementById("more"));
})();
