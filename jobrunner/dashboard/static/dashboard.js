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
        if (html === null || html === main.innerHTML) { return; }
        var typed = typedFields();
        main.innerHTML = html;
        restoreFields(typed);
      })
      .catch(function () { /* offline for a moment: try again next tick */ });
  }

  // What someone typed (or chose) in a form survives the swap: each field with an id gets
  // its value back, and the one being typed in its focus and cursor.
  function typedFields() {
    var fields = [];
    main.querySelectorAll("input[id], select[id], textarea[id]").forEach(function (field) {
      fields.push({
        id: field.id, value: field.value, focused: field === document.activeElement,
        start: field.selectionStart, end: field.selectionEnd
      });
    });
    return fields;
  }

  function restoreFields(fields) {
    fields.forEach(function (old) {
      var field = document.getElementById(old.id);
      if (!field || !main.contains(field)) { return; }
      field.value = old.value;
      if (old.focused) {
        field.focus();
        if (old.start !== null && field.setSelectionRange) {
          field.setSelectionRange(old.start, old.end);
        }
      }
    });
  }

  window.setInterval(refresh, INTERVAL_MS);
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) { event.preventDefault(); }
  });
})();
