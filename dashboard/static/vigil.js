// Vigil dashboard: keyboard shortcuts for triage, revealing blurred captures, printing.
// Everything works without this file; it only makes the common actions faster.
(function () {
  "use strict";
  var GRADES = ["false_positive", "no_concern", "concern", "escalated"];
  var LABELS = {false_positive: "False positive", no_concern: "No concern", concern: "Concern", escalated: "Escalated to head"};
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";

  function typing(e) {
    var t = e.target;
    if (!t) { return false; }
    if (t.tagName === "INPUT") { return !/^(checkbox|radio|button|submit)$/.test(t.type); }
    return t.isContentEditable || /^(TEXTAREA|SELECT)$/.test(t.tagName);
  }

  function grade(eventId, value, onDone) {
    var body = new URLSearchParams();
    body.set("grade", value);
    fetch("/events/" + encodeURIComponent(eventId) + "/grade", {
      method: "POST",
      credentials: "same-origin",
      headers: {"X-CSRF-Token": csrf, "Accept": "application/json",
                "Content-Type": "application/x-www-form-urlencoded"},
      body: body
    }).then(function (r) {
      if (!r.ok) { return r.json().then(function (j) { throw new Error(j.detail || r.status); }); }
      return r.json();
    }).then(onDone).catch(function (err) { window.alert("Not graded: " + err.message); });
  }

  function setStatus(cell, value) {
    if (!cell) { return; }
    cell.textContent = "";
    var span = document.createElement("span");
    span.className = "status st-" + value;
    span.textContent = LABELS[value] || value;
    cell.appendChild(span);
  }

  // A capture shown in place, under its row; severity 5 stays blurred until revealed.
  function blurredShot(src, severity) {
    var box = document.createElement("div");
    box.className = "shot" + (severity >= 5 ? " blurred" : "");
    var img = document.createElement("img");
    img.src = src;
    img.alt = "Screenshot at the time the rule fired";
    box.appendChild(img);
    if (severity >= 5) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "reveal";
      button.textContent = "Severity 5: reveal the screenshot";
      button.addEventListener("click", function () { box.classList.remove("blurred"); button.remove(); });
      box.appendChild(button);
    }
    return box;
  }

  function togglePreview(row) {
    var link = row && row.querySelector("a.preview");
    if (!link) { return; }
    var next = row.nextElementSibling;
    if (next && next.classList.contains("preview-row")) { next.remove(); return; }
    var tr = document.createElement("tr");
    tr.className = "preview-row";
    var td = document.createElement("td");
    td.colSpan = row.children.length;
    td.appendChild(blurredShot(link.dataset.shot, Number(link.dataset.severity)));
    tr.appendChild(td);
    row.parentNode.insertBefore(tr, row.nextSibling);
  }

  // The triage queue: j/k move, v view in place, o or Enter open, 1-4 grade, e escalate.
  var queue = document.getElementById("queue");
  if (queue) {
    var rows = Array.prototype.slice.call(queue.querySelectorAll("tr.row"));
    var at = -1;
    var select = function (i) {
      if (!rows.length) { return; }
      at = Math.max(0, Math.min(rows.length - 1, i));
      rows.forEach(function (r, n) { r.classList.toggle("selected", n === at); });
      rows[at].focus();
      rows[at].scrollIntoView({block: "nearest"});
    };
    document.addEventListener("keydown", function (e) {
      if (typing(e) || e.ctrlKey || e.metaKey || e.altKey) { return; }
      var row = rows[at];
      if (e.key === "j") { select(at + 1); }
      else if (e.key === "k") { select(at - 1); }
      else if ((e.key === "o" || e.key === "Enter") && row) { window.location = row.dataset.href; }
      else if (e.key === "v" && row) { togglePreview(row); }
      else if (e.key === "x" && row) {
        var box = row.querySelector("input[type=checkbox]");
        if (box) { box.checked = !box.checked; }
      }
      else if (row && (/^[1-4]$/.test(e.key) || e.key === "e")) {
        var value = e.key === "e" ? "escalated" : GRADES[Number(e.key) - 1];
        grade(row.dataset.id, value, function () {
          setStatus(row.querySelector(".status-cell"), value);
          select(at + 1);
        });
      } else { return; }
      e.preventDefault();
    });
    rows.forEach(function (r, n) { r.addEventListener("click", function () { select(n); }); });
    Array.prototype.forEach.call(queue.querySelectorAll("a.preview"), function (link) {
      link.addEventListener("click", function (e) {
        e.preventDefault();
        togglePreview(link.closest("tr"));
      });
    });
  }

  // An event's page: 1-4 and e grade through the buttons, u goes back to the queue.
  var grades = document.querySelector("form.grades");
  if (grades && !queue) {
    document.addEventListener("keydown", function (e) {
      if (typing(e) || e.ctrlKey || e.metaKey || e.altKey) { return; }
      var value = null;
      if (/^[1-4]$/.test(e.key)) { value = GRADES[Number(e.key) - 1]; }
      else if (e.key === "e") { value = "escalated"; }
      else if (e.key === "u") { window.location = "/triage"; e.preventDefault(); return; }
      if (!value) { return; }
      var button = grades.querySelector('button[data-grade="' + value + '"]');
      if (button) { e.preventDefault(); button.click(); }
    });
  }

  // Severity-5 captures stay blurred until the viewer chooses to look.
  var reveal = document.getElementById("reveal");
  if (reveal) {
    reveal.addEventListener("click", function () {
      document.getElementById("shot").classList.remove("blurred");
      reveal.remove();
    });
  }

  var print = document.getElementById("print");
  if (print) { print.addEventListener("click", function () { window.print(); }); }
})();
