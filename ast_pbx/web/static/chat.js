/* The chat page: conversations, sending, unread counts, live messages. */
(function () {
  "use strict";

  document.addEventListener("DOMContentLoaded", function () {
    const root = document.getElementById("chat");
    if (!root || !window.astpbx || !astpbx.user) {
      return;
    }
    const me = astpbx.user.login;
    const list = document.getElementById("chat-messages");
    const title = document.getElementById("chat-title");
    const form = document.getElementById("chat-form");
    const text = document.getElementById("chat-text");
    const errorBox = document.getElementById("chat-error");
    const contacts = Array.from(document.querySelectorAll(".chat-contact"));
    const shown = new Set();
    let current = null;
    let newest = 0;

    function contact(login) {
      return contacts.find(function (button) {
        return button.dataset.login === login;
      });
    }

    function setUnread(login, count) {
      const button = contact(login);
      if (!button) {
        return;
      }
      const badge = button.querySelector(".badge");
      badge.textContent = String(count);
      badge.hidden = count <= 0;
    }

    function addUnread(login) {
      const button = contact(login);
      if (button) {
        const badge = button.querySelector(".badge");
        setUnread(login, (parseInt(badge.textContent, 10) || 0) + 1);
      }
    }

    function showError(message) {
      errorBox.textContent = message || "";
      errorBox.hidden = !message;
    }

    function append(message) {
      if (shown.has(message.id)) {
        return;
      }
      shown.add(message.id);
      newest = Math.max(newest, message.id);
      const item = document.createElement("li");
      item.className = message.sender === me ? "chat-message mine" : "chat-message";
      const head = document.createElement("div");
      head.className = "chat-message-head";
      const who = document.createElement("span");
      who.className = "chat-message-sender";
      who.textContent = message.sender === me ? "Вы" : message.sender_name;
      const when = document.createElement("time");
      when.dateTime = message.sent_at;
      when.textContent = message.time;
      head.append(who, when);
      const body = document.createElement("div");
      body.className = "chat-message-text";
      body.textContent = message.text;
      item.append(head, body);
      const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
      list.appendChild(item);
      if (atBottom || message.sender === me) {
        list.scrollTop = list.scrollHeight;
      }
    }

    function markRead() {
      if (current === null || !newest) {
        return;
      }
      astpbx.post("/chat/read", { "with": current, "up_to": newest }).then(function () {
        setUnread(current, 0);
      }, function () {});
    }

    function open(login) {
      current = login;
      newest = 0;
      shown.clear();
      list.replaceChildren();
      showError("");
      contacts.forEach(function (button) {
        button.classList.toggle("active", button.dataset.login === login);
      });
      const button = contact(login);
      title.textContent = button ? button.querySelector(".chat-contact-name").textContent : "Чат";
      const url = "/chat/messages?with=" + encodeURIComponent(login);
      astpbx.get(url).then(function (answer) {
        if (current !== login) {
          return;
        }
        answer.messages.forEach(append);
        list.scrollTop = list.scrollHeight;
        markRead();
      }, function (error) {
        showError(error.message);
      });
      history.replaceState(null, "", login ? "/chat#" + encodeURIComponent(login) : "/chat");
      text.focus();
    }

    function conversationOf(message) {
      if (message.recipient === null) {
        return "";
      }
      return message.sender === me ? message.recipient : message.sender;
    }

    contacts.forEach(function (button) {
      button.addEventListener("click", function () {
        open(button.dataset.login);
      });
    });

    function send() {
      const value = text.value.trim();
      if (!value || current === null) {
        return;
      }
      text.disabled = true;
      astpbx.post("/chat/send", { to: current, text: value }).then(function (message) {
        text.value = "";
        text.disabled = false;
        text.focus();
        showError("");
        if (conversationOf(message) === current) {
          append(message);
        }
      }, function (error) {
        text.disabled = false;
        showError(error.message);
      });
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      send();
    });
    text.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        send();
      }
    });

    astpbx.on("chat", function (event) {
      if (event.action !== "message") {
        return;
      }
      const conversation = conversationOf(event);
      if (conversation === current) {
        append(event);
        if (event.sender !== me && document.visibilityState === "visible") {
          markRead();
        }
      } else if (event.sender !== me) {
        addUnread(conversation);
      }
    });
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible") {
        markRead();
      }
    });
    let connected = false;
    astpbx.on("open", function () {
      // A reconnection: messages may have come meanwhile. The first connection is not one.
      const again = connected;
      connected = true;
      if (again && current !== null) {
        open(current);
      }
    });

    const wanted = decodeURIComponent(location.hash.slice(1));
    open(contact(wanted) ? wanted : "");
  });
})();
