// The manager's pages: the live table of active calls, listening in, marking calls.
// Without this script the pages still work: the forms post and the server answers
// with a page; with it, they post in the background and the page stays put.
(function () {
  "use strict";

  var REFRESH_MS = 5000; // the fallback when no live event comes
  var DEBOUNCE_MS = 300; // a burst of `astpbx:calls` events makes one fetch

  function csrfToken(form) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta && meta.content) return meta.content;
    var field = form && form.querySelector('input[name="csrf_token"]');
    return field ? field.value : "";
  }

  // POST `data` as JSON with the CSRF header; resolves to {ok, status, body}.
  function post(url, data, form) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
        "X-CSRF-Token": csrfToken(form),
      },
      body: JSON.stringify(data),
    }).then(function (response) {
      return response
        .json()
        .catch(function () {
          return {};
        })
        .then(function (body) {
          return { ok: response.ok, status: response.status, body: body };
        });
    });
  }

  function fields(form, submitter) {
    var data = {};
    new FormData(form).forEach(function (value, key) {
      if (key !== "csrf_token") data[key] = String(value);
    });
    if (submitter && submitter.name) data[submitter.name] = submitter.value;
    return data;
  }

  function say(text, isError) {
    var box = document.getElementById("manager-message");
    if (!box) return;
    box.textContent = text || "";
    box.hidden = !text;
    box.classList.toggle("error", Boolean(isError));
  }

  function failure(result) {
    var body = result.body || {};
    var text = body.message || body.error || body.detail;
    if (text) return String(text);
    if (result.status === 401) return "Сеанс завершён: войдите снова.";
    return "Ошибка " + result.status + ".";
  }

  var OFFLINE = "Нет связи с сервером.";

  // Active calls

  function liveTable() {
    var box = document.getElementById("manager-calls");
    if (!box) return;
    var url = box.getAttribute("data-table-url");
    var timer = null;
    var loading = false;

    function refresh() {
      if (loading || document.hidden) return;
      loading = true;
      // X-Requested-With: a lapsed session answers 401, not the sign-in page.
      var headers = { Accept: "text/html", "X-Requested-With": "fetch" };
      fetch(url, { credentials: "same-origin", headers: headers })
        .then(function (response) {
          if (!response.ok || response.redirected) throw new Error(String(response.status));
          return response.text();
        })
        .then(function (html) {
          box.innerHTML = html;
          box.classList.remove("stale");
        })
        .catch(function () {
          box.classList.add("stale");
        })
        .then(function () {
          loading = false;
        });
    }

    function soon() {
      if (timer !== null) clearTimeout(timer);
      timer = setTimeout(function () {
        timer = null;
        refresh();
      }, DEBOUNCE_MS);
    }

    document.addEventListener("astpbx:calls", soon);
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden) soon();
    });
    setInterval(refresh, REFRESH_MS);
  }

  function listen(form, submitter) {
    var buttons = form.querySelectorAll("button");
    buttons.forEach(function (b) {
      b.disabled = true;
    });
    post(form.action, fields(form, submitter), form)
      .then(function (result) {
        say(result.ok ? result.body.message : failure(result), !result.ok);
      })
      .catch(function () {
        say(OFFLINE, true);
      })
      .then(function () {
        buttons.forEach(function (b) {
          b.disabled = false;
        });
      });
  }

  // History

  function mark(form) {
    var value = form.querySelector('input[name="marked"]');
    var button = form.querySelector("button");
    button.disabled = true;
    post(form.action, { marked: value.value }, form)
      .then(function (result) {
        if (!result.ok) {
          say(failure(result), true);
          return;
        }
        var marked = Boolean(result.body.marked);
        value.value = marked ? "0" : "1";
        button.classList.toggle("on", marked);
        button.setAttribute("aria-pressed", marked ? "true" : "false");
        button.title = marked ? "Снять отметку" : "Отметить";
        var row = form.closest("tr");
        if (row) row.classList.toggle("marked", marked);
      })
      .catch(function () {
        say(OFFLINE, true);
      })
      .then(function () {
        button.disabled = false;
      });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    if (form.hasAttribute("data-manager-listen")) {
      event.preventDefault();
      listen(form, event.submitter);
    } else if (form.hasAttribute("data-manager-mark")) {
      event.preventDefault();
      mark(form);
    }
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", liveTable);
  } else {
    liveTable();
  }
})();
