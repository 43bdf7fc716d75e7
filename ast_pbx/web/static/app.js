/* astpbx: what every page shares — the live events, the header, requests with CSRF.
 *
 * Page scripts use:
 *   astpbx.on(type, handler)      a live event of the server (ringing, answered, calls,
 *                                 queues, presence, callbacks, chat, …): handler(data);
 *                                 the same events come as DOM CustomEvents
 *                                 "astpbx:<type>" on document (detail: data);
 *                                 "open" fires on every (re)connection: reload state;
 *   astpbx.post(url, data)        fetch POST with JSON and the CSRF header → JSON;
 *   astpbx.get(url)               fetch GET → JSON;
 *   astpbx.user                   {login, role, name} of the signed-in user, or null.
 * Requests that come back 401 (the session ended) go to the sign-in page.
 * No inline scripts anywhere: the Content-Security-Policy forbids them.
 */
(function () {
  "use strict";

  const KNOWN = ["ringing", "answered", "calls", "queues", "presence", "callbacks", "chat"];
  // Events of the page itself, not of the server: "open" (connected), "header" (state).
  const LOCAL = new Set(["open", "header"]);
  const userMeta = document.querySelector('meta[name="astpbx-user"]');

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  function signIn() {
    const here = location.pathname + location.search;
    location.assign("/login?next=" + encodeURIComponent(here));
  }

  async function request(method, url, data) {
    const headers = {
      "Accept": "application/json",
      "X-Requested-With": "fetch",
      "X-CSRF-Token": csrfToken(),
    };
    const options = { method: method, headers: headers, credentials: "same-origin" };
    if (data !== undefined) {
      headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(data);
    }
    const response = await fetch(url, options);
    if (response.status === 401) {
      signIn();
      throw new Error("Войдите в систему");
    }
    let body = null;
    const type = response.headers.get("content-type") || "";
    if (type.includes("application/json")) {
      body = await response.json();
    }
    if (!response.ok) {
      let message = response.statusText || "Ошибка " + response.status;
      if (body && typeof body.error === "string") {
        message = body.error;
      } else if (body && Array.isArray(body.detail) && body.detail.length) {
        message = body.detail[0].msg || message;
      } else if (body && typeof body.detail === "string") {
        message = body.detail;
      }
      const error = new Error(message);
      error.status = response.status;
      error.body = body;
      throw error;
    }
    return body;
  }

  // Live events

  let source = null;
  const listening = new Set();

  function dispatch(type, data) {
    document.dispatchEvent(new CustomEvent("astpbx:" + type, { detail: data }));
  }

  function listen(type) {
    if (listening.has(type)) {
      return;
    }
    listening.add(type);
    if (source) {
      attach(type);
    }
  }

  function attach(type) {
    source.addEventListener(type, function (event) {
      let data = {};
      try {
        data = JSON.parse(event.data);
      } catch (error) {
        return;
      }
      dispatch(type, data);
    });
  }

  function setOnline(online) {
    const mark = document.getElementById("offline");
    if (mark) {
      mark.hidden = online;
    }
  }

  function connect() {
    source = new EventSource("/events");
    listening.forEach(attach);
    source.addEventListener("open", function () {
      setOnline(true);
      dispatch("open", {});
    });
    source.addEventListener("error", function () {
      setOnline(false);
      if (source.readyState === EventSource.CLOSED) {
        // Refused (the session ended?) rather than dropped: the browser will not retry.
        source = null;
        request("GET", "/header/state").then(function () {
          setTimeout(connect, 5000);
        }, function () {
          setTimeout(connect, 5000);
        });
      }
    });
  }

  function on(type, handler) {
    if (!LOCAL.has(type)) {
      listen(type);
    }
    document.addEventListener("astpbx:" + type, function (event) {
      handler(event.detail);
    });
  }

  // Forms: every POST form carries the token, even one a page script built.
  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || form.method.toLowerCase() !== "post") {
      return;
    }
    if (!form.querySelector('input[name="csrf_token"]')) {
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = "csrf_token";
      input.value = csrfToken();
      form.appendChild(input);
    }
  }, true);

  // A helper to throttle reloads that many events in a row would cause.
  function throttled(fn, wait) {
    let timer = null;
    let again = false;
    return function () {
      if (timer) {
        again = true;
        return;
      }
      fn();
      timer = setTimeout(function () {
        timer = null;
        if (again) {
          again = false;
          fn();
        }
      }, wait);
    };
  }

  const astpbx = {
    user: userMeta ? {
      login: userMeta.content,
      role: userMeta.dataset.role,
      name: userMeta.dataset.name,
    } : null,
    on: on,
    dispatch: dispatch,
    post: function (url, data) {
      return request("POST", url, data === undefined ? {} : data);
    },
    get: function (url) {
      return request("GET", url);
    },
    throttled: throttled,
  };
  window.astpbx = astpbx;

  // The header

  function byId(id) {
    return document.getElementById(id);
  }

  function showError(error) {
    window.alert(error.message || String(error));
  }

  function renderQueues(queues) {
    const list = byId("stat-queues");
    if (!list) {
      return;
    }
    list.replaceChildren();
    if (!queues.length) {
      const empty = document.createElement("div");
      const text = document.createElement("dt");
      text.textContent = "Очередей нет";
      empty.appendChild(text);
      list.appendChild(empty);
    }
    queues.forEach(function (queue) {
      const item = document.createElement("div");
      const name = document.createElement("dt");
      const count = document.createElement("dd");
      name.textContent = queue.name ? queue.number + " " + queue.name : queue.number;
      count.textContent = String(queue.waiting);
      count.dataset.queue = queue.number;
      if (queue.waiting > 0) {
        count.classList.add("busy");
      }
      item.append(name, count);
      list.appendChild(item);
    });
  }

  let lastState = null;

  function renderHeader(state) {
    lastState = state;
    const accept = byId("accept-switch");
    accept.checked = state.accepting;
    accept.disabled = false;
    byId("phone-bound").hidden = !state.phone;
    byId("phone-number").textContent = state.phone || "";
    byId("phone-unbound").hidden = Boolean(state.phone) || Boolean(state.bind_code);
    byId("phone-code").hidden = !state.bind_code;
    byId("bind-code").textContent = state.bind_code || "";
    const badge = byId("chat-badge");
    badge.hidden = !state.unread;
    badge.textContent = String(state.unread || "");
    byId("stat-received").textContent = String(state.stats.received);
    byId("stat-ivr").textContent = String(state.stats.ivr);
    byId("stat-operators").textContent = String(state.stats.operators);
    byId("stat-dialer").textContent = String(state.stats.dialer);
    renderQueues(state.queues);
    dispatch("header", state);
  }

  const refresh = throttled(function () {
    request("GET", "/header/state").then(renderHeader, function () {});
  }, 1500);
  astpbx.refreshHeader = refresh;

  function toggle(button, target, key, classTarget) {
    function apply(shown) {
      button.setAttribute("aria-expanded", String(shown));
      button.classList.toggle("on", shown);
      if (classTarget) {
        document.body.classList.toggle(classTarget, !shown);
      } else {
        target.hidden = !shown;
      }
    }
    const saved = localStorage.getItem(key);
    let shown = saved === null ? !target.hidden : saved === "1";
    apply(shown);
    button.addEventListener("click", function () {
      shown = !shown;
      localStorage.setItem(key, shown ? "1" : "0");
      apply(shown);
    });
  }

  function setUpHeader() {
    const bar = byId("topbar");
    if (!bar) {
      return;
    }
    toggle(byId("menu-toggle"), byId("nav"), "astpbx.menu", "nav-hidden");
    toggle(byId("stats-toggle"), byId("stats"), "astpbx.stats", null);
    byId("accept-switch").addEventListener("change", function (event) {
      const box = event.target;
      box.disabled = true;
      astpbx.post("/header/accept", { accepting: box.checked }).then(function () {
        box.disabled = false;
      }, function (error) {
        box.checked = !box.checked;
        box.disabled = false;
        showError(error);
      });
    });
    byId("bind").addEventListener("click", function () {
      astpbx.post("/header/bind").then(function (answer) {
        byId("bind-code").textContent = answer.code;
        byId("phone-code").hidden = false;
        byId("phone-unbound").hidden = true;
      }, showError);
    });
    byId("unbind").addEventListener("click", function () {
      astpbx.post("/header/unbind").then(refresh, showError);
    });
    ["presence", "chat", "open"].forEach(function (type) {
      on(type, refresh);
    });
    // Callers waiting come with the event itself: no request per change.
    on("queues", function (data) {
      if (!lastState || !data || !data.waiting) {
        refresh();
        return;
      }
      lastState.queues.forEach(function (queue) {
        queue.waiting = data.waiting[queue.number] || 0;
      });
      renderQueues(lastState.queues);
    });
    // Today's counts change with calls nobody publishes to operators: look every minute.
    setInterval(function () {
      if (!byId("stats").hidden) {
        refresh();
      }
    }, 60000);
    refresh();
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (!astpbx.user) {
      return;
    }
    KNOWN.forEach(listen);
    setUpHeader();
    connect();
  });
})();
