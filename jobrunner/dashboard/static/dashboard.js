// Live updates without a build step: every few seconds, fetch this page's main part again
// (the server renders it; X-Partial asks for the fragment only) and swap it in. Paused while
// the tab is hidden. A 401 (session over) sends the browser to the login page.
(function () {
  "use strict";
  var main = document.getElementById("main");
  if (!main || main.dataset.live !== "1") { return; }
  var INTERVAL_MS = 2000;

  function refresh() {
    if (document.hidden) { return; }
    fetch(window.location.href, { headers: { "X-Partial": "1" }, credentials: "same-origin" })
      .then(function (response) {
        if (response.status === 401) { window.location = "/dashboard/login"; return null; }
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (html !== null && html !== main.innerHTML) { main.innerHTML = html; }
      })
      .catch(function () { /* offline for a moment: try again next tick */ });
  }

  window.setInterval(refresh, INTERVAL_MS);
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) { event.preventDefault(); }
  });
})();
