// Live updates without a build step: every few seconds, fetch this page's main part again
// (the server renders it; X-Partial asks for the fragment only) and swap it in. Paused while
// the tab is hidden. A 401 (session over) sends the browser to the login page.
(function () {
  "use strict";
  var main = document.getElementById("main");
  if (!main) { return; }
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
        resort();
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

  // Sortable tables (class "sortable"): a click on a heading sorts by that column, a second
  // click the other way. Cells sort by their data-sort value (numbers as numbers), else
  // their text. The order chosen is applied again after each refresh.
  var sorted = null;

  function sortKey(row, column) {
    var cell = row.cells[column];
    var text = cell ? (cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent) : "";
    return /^-?\d+(\.\d+)?$/.test(text.trim()) ? parseFloat(text) : text;
  }

  function sortTable(table, column, descending) {
    var body = table.tBodies[0];
    if (!body) { return; }
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = sortKey(a, column), y = sortKey(b, column);
      var order = typeof x === typeof y ? (x < y ? -1 : x > y ? 1 : 0)
        : (typeof x === "number" ? -1 : 1);
      return descending ? -order : order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      th.setAttribute("aria-sort", i === column ? (descending ? "descending" : "ascending") : "none");
    });
  }

  function resort() {
    var table = sorted && document.getElementById(sorted.table);
    if (table) { sortTable(table, sorted.column, sorted.descending); }
  }

  document.addEventListener("click", function (event) {
    var th = event.target.closest ? event.target.closest("table.sortable th") : null;
    if (!th) { return; }
    var table = th.closest("table");
    var again = sorted && sorted.table === table.id && sorted.column === th.cellIndex;
    sorted = { table: table.id, column: th.cellIndex, descending: again ? !sorted.descending : false };
    sortTable(table, sorted.column, sorted.descending);
  });

  // Only a live page refreshes; sorting and confirmations work on every page.
  if (main.dataset.live === "1") { window.setInterval(refresh, INTERVAL_MS); }
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) { event.preventDefault(); }
  });
})();
