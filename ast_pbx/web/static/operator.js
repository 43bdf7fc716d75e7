// The operator's forms: call handling (GET /operator) and callback requests (GET /callbacks).
// Without this script the pages still work: links and forms load whole pages. With it,
// forms and links marked data-target load fragments of the same server-rendered
// (autoescaped) HTML in place, and the live events of app.js (astpbx.on) fill the form:
// ringing / answered on the operator's phone show the caller, his applicants and
// history; interactions (an entry was made) refreshes the history; callbacks refreshes
// the list of requests; the header's state (astpbx:header) gives the operator's phone.
(function () {
  "use strict";

  var HISTORY_FALLBACK_MS = 1500; // after a pick-up, if no astpbx:interactions comes

  function csrfToken(form) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta && meta.content) return meta.content;
    var field = form && form.querySelector('input[name="csrf_token"]');
    return field ? field.value : "";
  }

  // GET or POST for a fragment; resolves to {ok, status, html} or {ok, status, text}.
  function request(url, options, form) {
    options = options || {};
    var headers = { "X-Requested-With": "fetch", Accept: "text/html" };
    if (options.body !== undefined) {
      headers["Content-Type"] = "application/json";
      headers["X-CSRF-Token"] = csrfToken(form);
    }
    return fetch(url, {
      method: options.body !== undefined ? "POST" : "GET",
      credentials: "same-origin",
      headers: headers,
      body: options.body !== undefined ? JSON.stringify(options.body) : undefined,
    })
      .then(function (response) {
        if (response.status === 401) {
          window.location.reload(); // signed out: the sign-in page
          return { ok: false, status: 401, text: "Войдите снова" };
        }
        var type = response.headers.get("content-type") || "";
        if (type.indexOf("text/html") !== -1) {
          return response.text().then(function (html) {
            return { ok: response.ok, status: response.status, html: html };
          });
        }
        return response
          .json()
          .catch(function () {
            return {};
          })
          .then(function (body) {
            var detail = body && (body.detail || body.error);
            if (Array.isArray(detail)) detail = "Неверные данные формы";
            return {
              ok: response.ok,
              status: response.status,
              text: detail ? String(detail) : "Ошибка " + response.status,
            };
          });
      })
      .catch(function () {
        return { ok: false, status: 0, text: "Нет связи с сервером" };
      });
  }

  function resolve(origin, spec) {
    if (!spec) return null;
    if (spec.indexOf("closest:") === 0) return origin.closest(spec.slice(8));
    return document.querySelector(spec);
  }

  function showError(origin, text) {
    var note = origin.nextElementSibling;
    if (!note || !note.classList.contains("js-error")) {
      note = document.createElement("p");
      note.className = "message error js-error";
      note.setAttribute("role", "alert");
      origin.insertAdjacentElement("afterend", note);
    }
    note.textContent = text;
  }

  // Put a fragment in place: the target's content, or the target itself (data-swap=outer).
  function show(origin, target, result, outer) {
    if (result.html === undefined) {
      showError(origin, result.text);
      return;
    }
    if (outer) target.outerHTML = result.html;
    else target.innerHTML = result.html;
  }

  function load(url, target) {
    if (!target) return Promise.resolve();
    return request(url).then(function (result) {
      show(target, target, result, false);
    });
  }

  function query(params) {
    return new URLSearchParams(params).toString();
  }

  function formFields(form) {
    var fields = {};
    new FormData(form).forEach(function (value, key) {
      if (typeof value === "string") fields[key] = value;
    });
    return fields;
  }

  // A live event of the server: through app.js, which subscribes to its type.
  function on(type, handler) {
    if (window.astpbx && window.astpbx.on) {
      window.astpbx.on(type, handler);
    } else {
      document.addEventListener("astpbx:" + type, function (event) {
        handler(event.detail || {});
      });
    }
  }

  function refresh(selector) {
    var element = document.querySelector(selector);
    if (element && element.dataset.listUrl) load(element.dataset.listUrl, element);
  }

  // --- fragments: forms and links marked data-target --------------------------------

  document.addEventListener("input", function (event) {
    var form = event.target.closest && event.target.closest("form");
    if (form) form.dataset.dirty = "1";
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || form.method === "dialog") return;
    if (form.hasAttribute("data-caller-form")) {
      event.preventDefault();
      var phone = form.elements.phone.value.trim();
      if (phone) caller.set(phone, null, true);
      return;
    }
    var target = resolve(form, form.dataset.target);
    if (!target) return;
    event.preventDefault();
    var buttons = Array.prototype.filter.call(form.querySelectorAll("button"), function (b) {
      return !b.disabled;
    });
    buttons.forEach(function (b) {
      b.disabled = true;
    });
    var fields = formFields(form);
    var done =
      form.method.toLowerCase() === "post"
        ? request(form.action, { body: fields }, form)
        : request((form.dataset.fragment || form.action) + "?" + query(fields));
    done.then(function (result) {
      buttons.forEach(function (b) {
        b.disabled = false;
      });
      show(form, target, result, form.dataset.swap === "outer");
      if (result.ok && form.dataset.refresh) refresh(form.dataset.refresh);
    });
  });

  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a[data-fragment]");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    var target = resolve(link, link.dataset.target);
    if (!target) return;
    event.preventDefault();
    request(link.dataset.fragment).then(function (result) {
      show(link, target, result, false);
      var dialog = link.dataset.dialog && document.querySelector(link.dataset.dialog);
      if (dialog && result.html !== undefined) {
        if (dialog.open) dialog.close();
        dialog.showModal();
      }
    });
  });

  // --- the call-handling form --------------------------------------------------------

  var root = document.getElementById("operator");
  var caller = {
    set: function () {},
  };

  if (root) {
    var myPhone = root.dataset.myPhone || "";
    var phoneInput = document.getElementById("op-phone");
    var state = document.getElementById("op-call-state");
    var current = phoneInput ? phoneInput.value.trim() : "";
    var historyPane = document.getElementById("op-history");
    var fallback = null;

    var historyBusy = function () {
      return Boolean(historyPane && historyPane.querySelector("form[data-dirty]"));
    };
    var loadHistory = function (force) {
      if (!current || (!force && historyBusy())) return;
      load("/operator/history?" + query({ phone: current }), historyPane);
    };

    caller.set = function (phone, text, force) {
      current = phone;
      if (phoneInput) phoneInput.value = phone;
      document.querySelectorAll("input[data-current-phone]").forEach(function (input) {
        input.value = phone;
      });
      if (text && state) state.textContent = text;
      load("/operator/lookup?" + query({ phone: phone }), document.getElementById("op-applicants"));
      loadHistory(force);
      window.history.replaceState(null, "", "/operator?" + query({ phone: phone }));
    };

    // The server sends ringing/answered of the operator's own phone only; the check
    // below guards against a page whose phone changed since.
    var mine = function (detail) {
      detail = detail || {};
      if (!detail.caller) return null;
      return myPhone && String(detail.phone) !== myPhone ? null : detail;
    };

    on("ringing", function (data) {
      var detail = mine(data);
      if (detail) caller.set(String(detail.caller), "Входящий вызов. Звонит " + detail.caller);
    });

    on("answered", function (data) {
      var detail = mine(data);
      if (!detail) return;
      var phone = String(detail.caller);
      if (phone !== current) caller.set(phone, "Разговор: " + phone);
      else if (state) state.textContent = "Разговор: " + phone;
      clearTimeout(fallback);
      fallback = setTimeout(loadHistory, HISTORY_FALLBACK_MS);
    });

    on("interactions", function (data) {
      if (!data || String(data.phone) !== current) return;
      clearTimeout(fallback);
      loadHistory();
    });

    on("open", function () {
      loadHistory(); // reconnected: entries may have been made meanwhile
    });

    // The header's state (app.js): the phone bound to the operator now.
    document.addEventListener("astpbx:header", function (event) {
      var header = event.detail || {};
      myPhone = header.phone ? String(header.phone) : "";
      root.dataset.myPhone = myPhone;
      if (state && !current) {
        state.textContent = myPhone
          ? "Ваш телефон: " + myPhone + "."
          : "Телефон к вам не привязан: входящие вызовы не показываются.";
      }
    });
  }

  // --- the callback requests ---------------------------------------------------------

  if (document.getElementById("cb-list")) {
    on("callbacks", function () {
      refresh("#cb-list");
    });
    on("open", function () {
      refresh("#cb-list");
    });
  }
})();
