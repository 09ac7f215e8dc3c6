/*!
 * Spine clinic chat widget: a small website chat for the clinic's Rasa assistant (socket.io channel).
 *
 * Paste into any page (one tag):
 *   <script src="https://YOUR-WEB-HOST/widget.js" data-server="https://YOUR-BOT-HOST" defer></script>
 *
 * Optional attributes: data-clinic-name, data-clinic-phone, data-emergency-number, data-title,
 * data-socket-path (default /socket.io), data-open="true" (start open).
 * Everything else (socket.io client, styles, clinic settings in config.json) is loaded from the same
 * place as this file: no CDN. Any element with a data-clinic-chat-open attribute opens the chat.
 *
 * The conversation survives reloads (session id + messages in localStorage, kept 24 h after the
 * last message, cleared by "New conversation"), and reconnects by itself when the server restarts.
 * Bot text is rendered with textContent only: line breaks and "- " bullets are kept, nothing is
 * parsed as HTML.
 */
(function () {
  "use strict";

  if (window.ClinicChat) return;

  var script = document.currentScript || document.querySelector("script[src*='widget.js']");
  var dataset = (script && script.dataset) || {};
  var base = new URL(".", (script && script.src) || window.location.href).href;
  var HISTORY_TTL_MS = 24 * 60 * 60 * 1000;
  var MAX_HISTORY = 200;
  var REPLY_WAIT_MS = 20000;
  var SUGGESTIONS = [
    "How do I get ready?",
    "Can I drive myself home?",
    "Will it hurt?",
    "When should I call the clinic?"
  ];

  // ---- small helpers -------------------------------------------------------------------------
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === null || value === undefined || value === false) return;
      if (key === "text") node.textContent = value;
      else if (key === "className") node.className = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    });
    (children || []).forEach(function (child) {
      if (child) node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function svg(pathData, size) {
    var ns = "http://www.w3.org/2000/svg";
    var icon = document.createElementNS(ns, "svg");
    icon.setAttribute("viewBox", "0 0 24 24");
    icon.setAttribute("width", String(size || 20));
    icon.setAttribute("height", String(size || 20));
    icon.setAttribute("aria-hidden", "true");
    icon.setAttribute("focusable", "false");
    var path = document.createElementNS(ns, "path");
    path.setAttribute("d", pathData);
    path.setAttribute("fill", "currentColor");
    icon.appendChild(path);
    return icon;
  }

  var ICONS = {
    chat: "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2zm3 6v2h2v-2H7zm4 0v2h2v-2h-2zm4 0v2h2v-2h-2z",
    minimize: "M5 11h14v2H5z",
    restart: "M12 5V2L7 6l5 4V7a5 5 0 1 1-5 5H5a7 7 0 1 0 7-7z",
    send: "M3 20.5 21 12 3 3.5 3 10l12 2-12 2z",
    alert: "M1 21h22L12 2 1 21zm12-3h-2v-2h2v2zm0-4h-2v-4h2v4z",
    phone: "M6.6 10.8a15.1 15.1 0 0 0 6.6 6.6l2.2-2.2a1 1 0 0 1 1-.25 11.4 11.4 0 0 0 3.6.57 1 1 0 0 1 1 1V20a1 1 0 0 1-1 1A17 17 0 0 1 3 4a1 1 0 0 1 1-1h3.5a1 1 0 0 1 1 1c0 1.25.2 2.45.57 3.57a1 1 0 0 1-.25 1l-2.2 2.23z"
  };

  function telHref(number) {
    return "tel:" + String(number).replace(/[^\d+]/g, "");
  }

  function storageGet(key) {
    try { return JSON.parse(window.localStorage.getItem(key)); } catch (e) { return null; }
  }

  function storageSet(key, value) {
    try { window.localStorage.setItem(key, JSON.stringify(value)); } catch (e) { /* private mode: memory only */ }
  }

  function storageRemove(key) {
    try { window.localStorage.removeItem(key); } catch (e) { /* ignore */ }
  }

  function newSessionId() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID().replace(/-/g, "");
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function loadScript(src) {
    return new Promise(function (resolve, reject) {
      var tag = document.createElement("script");
      tag.src = src;
      tag.async = true;
      tag.onload = resolve;
      tag.onerror = function () { reject(new Error("could not load " + src)); };
      document.head.appendChild(tag);
    });
  }

  function fetchConfig() {
    return fetch(base + "config.json", { credentials: "omit" })
      .then(function (reply) { return reply.ok ? reply.json() : {}; })
      .catch(function () { return {}; });
  }

  // ---- safe text rendering -------------------------------------------------------------------
  // Phone numbers and web links become links; everything else is a text node.
  function linkPattern(config) {
    var escape = function (s) { return String(s).replace(/[.*+?^${}()|[\]\\]/g, "\\$&"); };
    var known = [config.clinic_phone, config.emergency_number].filter(Boolean).map(escape);
    var parts = ["https?://[^\\s<>\"]+[^\\s<>\".,;:!?)\\]']", "\\(\\d{3}\\)\\s?\\d{3}-\\d{4}", "\\b\\d{3}[-.]\\d{3}[-.]\\d{4}\\b"];
    known.forEach(function (k) { parts.push(/^\d+$/.test(k) ? "\\b" + k + "\\b" : k); });
    return new RegExp(parts.join("|"), "g");
  }

  function appendInline(parent, text, pattern) {
    var last = 0;
    var match;
    pattern.lastIndex = 0;
    while ((match = pattern.exec(text)) !== null) {
      if (match.index > last) parent.appendChild(document.createTextNode(text.slice(last, match.index)));
      var found = match[0];
      var link = document.createElement("a");
      link.textContent = found;
      if (/^https?:\/\//.test(found)) {
        link.href = found;
        link.target = "_blank";
        link.rel = "noopener noreferrer";
      } else {
        link.href = telHref(found);
      }
      parent.appendChild(link);
      last = match.index + found.length;
    }
    if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
  }

  function renderText(container, text, pattern) {
    String(text || "").replace(/\r\n?/g, "\n").trim().split(/\n\s*\n/).forEach(function (paragraph) {
      var list = null;
      var para = null;
      paragraph.split("\n").forEach(function (line) {
        var bullet = /^\s*(?:[-*\u2022])\s+(.*)$/.exec(line);
        if (bullet) {
          para = null;
          if (!list) { list = document.createElement("ul"); container.appendChild(list); }
          var item = document.createElement("li");
          appendInline(item, bullet[1], pattern);
          list.appendChild(item);
        } else {
          list = null;
          if (para) para.appendChild(document.createElement("br"));
          else { para = document.createElement("p"); container.appendChild(para); }
          appendInline(para, line.trim(), pattern);
        }
      });
    });
  }

  // ---- the widget ----------------------------------------------------------------------------
  function Widget(config, io) {
    this.config = config;
    this.io = io;
    this.key = "clinicChat.v1:" + config.server;
    this.pattern = linkPattern(config);
    this.state = this.loadState();
    this.socket = null;
    this.confirmed = false;
    this.waitTimer = null;
    this.build();
    this.renderHistory();
    this.connect();
  }

  Widget.prototype.loadState = function () {
    var saved = storageGet(this.key);
    var fresh = saved && saved.sessionId && Array.isArray(saved.messages) &&
      Date.now() - (saved.updated || 0) < HISTORY_TTL_MS;
    if (!fresh) return { sessionId: newSessionId(), messages: [], updated: Date.now(), open: false };
    return saved;
  };

  Widget.prototype.save = function () {
    this.state.updated = Date.now();
    this.state.messages = this.state.messages.slice(-MAX_HISTORY);
    storageSet(this.key, this.state);
  };

  Widget.prototype.build = function () {
    var c = this.config;
    var self = this;
    this.host = el("div", { id: "clinic-chat-widget", "data-clinic-chat": "" });
    var root = this.host.attachShadow ? this.host.attachShadow({ mode: "open" }) : this.host;
    this.root = root;
    var style = el("link", { rel: "stylesheet", href: base + "widget.css" });
    var shell = el("div", { className: "cc", hidden: true });
    style.addEventListener("load", function () { shell.hidden = false; });
    style.addEventListener("error", function () { shell.hidden = false; });

    this.launcher = el("button", {
      type: "button", className: "cc-launcher", "aria-expanded": "false", "aria-controls": "cc-panel"
    }, [svg(ICONS.chat, 22), this.launcherLabel = el("span", { text: "Ask a question" })]);

    this.title = el("h2", { id: "cc-title", className: "cc-title", text: c.title || ("Ask " + c.clinic_name) });
    var subtitle = el("p", { className: "cc-subtitle", text: "Automated assistant for nerve root injection questions" });
    this.restartButton = el("button", {
      type: "button", className: "cc-icon-button", "aria-label": "New conversation", title: "New conversation"
    }, [svg(ICONS.restart)]);
    this.closeButton = el("button", {
      type: "button", className: "cc-icon-button", "aria-label": "Minimize chat", title: "Minimize chat"
    }, [svg(ICONS.minimize)]);
    var header = el("div", { className: "cc-header" }, [
      el("div", { className: "cc-heading" }, [this.title, subtitle]),
      el("div", { className: "cc-header-actions" }, [this.restartButton, this.closeButton])
    ]);

    var note = el("p", { className: "cc-emergency-note", id: "cc-emergency-note" }, [
      el("strong", { text: "Not for emergencies." }),
      " If you think you have an emergency, call ",
      el("a", { href: telHref(c.emergency_number), text: c.emergency_number }),
      " now. This chat is not watched by staff."
    ]);

    this.log = el("div", {
      className: "cc-log", role: "log", "aria-live": "polite", "aria-relevant": "additions",
      "aria-label": "Conversation", tabindex: "0"
    });
    var intro = el("div", { className: "cc-msg cc-bot cc-intro" });
    renderText(intro,
      "Hi! I answer general questions about your lumbar (lower back) or cervical (neck) nerve root injection: " +
      "getting ready, the day of, and aftercare.\n\nI can't see your medical record. For questions about your own care, call " +
      c.clinic_phone + " (" + c.clinic_hours + ").", this.pattern);
    this.log.appendChild(intro);

    this.typing = el("div", { className: "cc-typing", hidden: true, "aria-hidden": "true" }, [
      el("span"), el("span"), el("span")
    ]);
    this.status = el("p", { className: "cc-status", role: "status", "aria-live": "polite" });

    this.suggestions = el("div", { className: "cc-suggestions", role: "group", "aria-label": "Suggested questions" });
    SUGGESTIONS.forEach(function (question) {
      var chip = el("button", { type: "button", className: "cc-chip", text: question });
      chip.addEventListener("click", function () { self.send(question); });
      self.suggestions.appendChild(chip);
    });

    this.input = el("textarea", {
      id: "cc-input", className: "cc-input", rows: "1", maxlength: "2000", autocomplete: "off",
      "aria-describedby": "cc-hint", placeholder: "Type your question"
    });
    this.sendButton = el("button", { type: "submit", className: "cc-send" }, [svg(ICONS.send, 18), el("span", { text: "Send" })]);
    this.form = el("form", { className: "cc-form", novalidate: true }, [
      el("label", { for: "cc-input", className: "cc-visually-hidden", text: "Your question" }),
      this.input,
      this.sendButton
    ]);
    var hint = el("p", { id: "cc-hint", className: "cc-hint",
      text: "Enter sends, Shift+Enter adds a line. Please don't share your date of birth or other private details." });

    this.panel = el("div", {
      id: "cc-panel", className: "cc-panel", role: "dialog", "aria-modal": "false", "aria-labelledby": "cc-title",
      hidden: true
    }, [header, note, this.log, this.typing, this.suggestions, this.status, this.form, hint]);

    shell.appendChild(this.launcher);
    shell.appendChild(this.panel);
    root.appendChild(style);
    root.appendChild(shell);
    document.body.appendChild(this.host);

    this.launcher.addEventListener("click", function () { self.open(); });
    this.closeButton.addEventListener("click", function () { self.close(); });
    this.restartButton.addEventListener("click", function () { self.restart(); });
    this.panel.addEventListener("keydown", function (event) {
      if (event.key === "Escape") { event.preventDefault(); self.close(); }
    });
    this.form.addEventListener("submit", function (event) {
      event.preventDefault();
      self.send(self.input.value);
    });
    this.input.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        self.send(self.input.value);
      }
    });
    this.input.addEventListener("input", function () { self.autosize(); });
    document.addEventListener("click", function (event) {
      var target = event.target && event.target.closest && event.target.closest("[data-clinic-chat-open]");
      if (target) { event.preventDefault(); self.open(); }
    });
    if (this.state.open || dataset.open === "true") this.open(false);
  };

  Widget.prototype.autosize = function () {
    this.input.style.height = "auto";
    this.input.style.height = Math.min(this.input.scrollHeight, 132) + "px";
  };

  Widget.prototype.setUnread = function (unread) {
    this.launcherLabel.textContent = unread ? "New reply: open chat" : "Ask a question";
    this.launcher.classList.toggle("cc-unread", unread);
  };

  Widget.prototype.open = function (focus) {
    this.setUnread(false);
    this.panel.hidden = false;
    this.launcher.setAttribute("aria-expanded", "true");
    this.launcher.hidden = true;
    this.state.open = true;
    this.save();
    this.scrollToEnd();
    if (focus !== false) this.input.focus();
  };

  Widget.prototype.close = function () {
    this.panel.hidden = true;
    this.launcher.hidden = false;
    this.launcher.setAttribute("aria-expanded", "false");
    this.state.open = false;
    this.save();
    this.launcher.focus();
  };

  Widget.prototype.restart = function () {
    if (!window.confirm("Start a new conversation? This clears the messages on this device.")) return;
    this.state = { sessionId: newSessionId(), messages: [], updated: Date.now(), open: true };
    this.save();
    Array.prototype.slice.call(this.log.querySelectorAll(".cc-msg:not(.cc-intro)")).forEach(function (node) {
      node.remove();
    });
    this.setWaiting(false);
    this.updateSuggestions();
    this.confirmed = false;
    if (this.socket && this.socket.connected) this.requestSession();
    this.input.focus();
  };

  Widget.prototype.scrollToEnd = function () {
    // an empty conversation shows the greeting from its start
    this.log.scrollTop = this.state.messages.length ? this.log.scrollHeight : 0;
  };

  Widget.prototype.updateSuggestions = function () {
    this.suggestions.hidden = this.state.messages.length > 0;
  };

  Widget.prototype.renderHistory = function () {
    var self = this;
    this.state.messages.forEach(function (message) { self.renderMessage(message); });
    this.updateSuggestions();
    this.scrollToEnd();
  };

  Widget.prototype.renderMessage = function (message) {
    var c = this.config;
    var node;
    if (message.from === "user") {
      node = el("div", { className: "cc-msg cc-user" + (message.pending ? " cc-pending" : "") }, [
        el("span", { className: "cc-visually-hidden", text: "You said: " })
      ]);
      var body = el("div", { className: "cc-body" });
      renderText(body, message.text, /(?!)/g);
      node.appendChild(body);
      if (message.pending) node.appendChild(el("span", { className: "cc-pending-note", text: "Not sent yet, waiting for connection" }));
    } else if (message.seek) {
      var emergency = message.seek !== "urgent";
      node = el("div", { className: "cc-msg cc-seek " + (emergency ? "cc-seek-emergency" : "cc-seek-urgent"), role: "alert" });
      node.appendChild(el("h3", { className: "cc-seek-title" }, [
        svg(ICONS.alert, 22), emergency ? "Get help now" : "Call the clinic now"
      ]));
      var text = el("div", { className: "cc-body" });
      renderText(text, message.text, this.pattern);
      node.appendChild(text);
      var actions = el("div", { className: "cc-seek-actions" });
      if (emergency) {
        actions.appendChild(el("a", { className: "cc-call cc-call-primary", href: telHref(c.emergency_number) },
          [svg(ICONS.phone, 18), "Call " + c.emergency_number]));
      }
      actions.appendChild(el("a", { className: "cc-call" + (emergency ? "" : " cc-call-primary"), href: telHref(c.clinic_phone) },
        [svg(ICONS.phone, 18), "Call clinic " + c.clinic_phone]));
      node.appendChild(actions);
    } else {
      node = el("div", { className: "cc-msg cc-bot" }, [el("span", { className: "cc-visually-hidden", text: "Assistant: " })]);
      var content = el("div", { className: "cc-body" });
      renderText(content, message.text, this.pattern);
      node.appendChild(content);
    }
    this.log.appendChild(node);
    return node;
  };

  Widget.prototype.addMessage = function (message) {
    this.state.messages.push(message);
    this.save();
    var node = this.renderMessage(message);
    this.updateSuggestions();
    if (message.from === "bot" && node.offsetHeight > this.log.clientHeight - 24) {
      // a long answer: show its beginning, the patient scrolls on
      this.log.scrollTop = node.offsetTop - 8;
    } else {
      this.scrollToEnd();
    }
    return node;
  };

  Widget.prototype.addQuickReplies = function (replies) {
    var self = this;
    var group = el("div", { className: "cc-msg cc-quick", role: "group", "aria-label": "Answers you can pick" });
    replies.forEach(function (reply) {
      if (!reply || !reply.title) return;
      var button = el("button", { type: "button", className: "cc-chip", text: reply.title });
      button.addEventListener("click", function () {
        group.remove();
        self.send(reply.title, reply.payload || reply.title);
      });
      group.appendChild(button);
    });
    this.log.appendChild(group);
    this.scrollToEnd();
  };

  Widget.prototype.setWaiting = function (waiting) {
    var self = this;
    clearTimeout(this.waitTimer);
    this.typing.hidden = !waiting;
    if (waiting) {
      this.waitTimer = setTimeout(function () {
        self.typing.hidden = true;
        self.setStatus("No reply yet. You can call " + self.config.clinic_phone +
          ". If you think you have an emergency, call " + self.config.emergency_number + ".");
      }, REPLY_WAIT_MS);
    }
  };

  Widget.prototype.setStatus = function (text) {
    this.status.textContent = text || "";
    this.status.hidden = !text;
  };

  Widget.prototype.send = function (text, payload) {
    text = String(text || "").trim();
    if (!text) { this.input.focus(); return; }
    this.input.value = "";
    this.autosize();
    var quick = this.log.querySelectorAll(".cc-quick");
    Array.prototype.forEach.call(quick, function (node) { node.remove(); });
    var ready = this.socket && this.socket.connected && this.confirmed;
    this.addMessage({ from: "user", text: text, payload: payload || null, pending: !ready, at: Date.now() });
    if (ready) {
      this.emitMessage(payload || text);
    } else {
      this.setStatus("Reconnecting. Your message will be sent when the connection is back.");
    }
    this.input.focus();
  };

  Widget.prototype.emitMessage = function (text) {
    this.socket.emit("user_uttered", { message: text, session_id: this.state.sessionId });
    this.setWaiting(true);
  };

  Widget.prototype.flushPending = function () {
    var self = this;
    var pending = this.state.messages.filter(function (m) { return m.pending; });
    if (!pending.length) return;
    pending.forEach(function (message) {
      message.pending = false;
      self.emitMessage(message.payload || message.text);
    });
    this.save();
    Array.prototype.forEach.call(this.log.querySelectorAll(".cc-pending"), function (node) {
      node.classList.remove("cc-pending");
      var note = node.querySelector(".cc-pending-note");
      if (note) note.remove();
    });
  };

  Widget.prototype.receive = function (data) {
    if (!data || typeof data !== "object") return;
    // markers (kind, level) come in `metadata`, where rasa-webchat also accepts them
    var marks = (data.metadata && typeof data.metadata === "object") ? data.metadata : {};
    var kind = marks.kind;
    var text = typeof data.text === "string" ? data.text : "";
    this.setWaiting(false);
    this.setStatus("");
    if (text.trim()) {
      var seek = kind === "seek_care" ? (marks.level === "urgent" ? "urgent" : "emergency") : null;
      if (seek && this.panel.hidden) this.open(false);  // a seek-care message is never left unseen
      this.addMessage({ from: "bot", text: text, seek: seek, at: Date.now() });
      if (this.panel.hidden) this.setUnread(true);
    }
    var replies = data.quick_replies || data.buttons;
    if (Array.isArray(replies) && replies.length) this.addQuickReplies(replies);
  };

  Widget.prototype.requestSession = function () {
    this.socket.emit("session_request", { session_id: this.state.sessionId });
  };

  Widget.prototype.connect = function () {
    var self = this;
    this.setStatus("Connecting...");
    this.socket = this.io(this.config.server, {
      path: dataset.socketPath || "/socket.io",
      transports: ["websocket", "polling"],
      reconnection: true,
      reconnectionDelay: 1000,
      reconnectionDelayMax: 5000,
      timeout: 10000
    });
    this.socket.on("connect", function () {
      self.confirmed = false;
      self.requestSession();
    });
    this.socket.on("session_confirm", function (sessionId) {
      var id = typeof sessionId === "string" ? sessionId : (sessionId && sessionId.session_id);
      if (id && id !== self.state.sessionId) { self.state.sessionId = id; self.save(); }
      self.confirmed = true;
      self.setStatus("");
      self.host.setAttribute("data-connected", "true");
      self.flushPending();
    });
    this.socket.on("bot_uttered", function (data) { self.receive(data); });
    this.socket.on("disconnect", function () {
      self.confirmed = false;
      self.host.setAttribute("data-connected", "false");
      self.setWaiting(false);
      self.setStatus("Connection lost. Reconnecting...");
    });
    this.socket.on("connect_error", function () {
      self.host.setAttribute("data-connected", "false");
      self.setStatus("Can't reach the assistant right now. Trying again... You can call " + self.config.clinic_phone + ".");
    });
  };

  // ---- start ---------------------------------------------------------------------------------
  function start() {
    var ioReady = window.io ? Promise.resolve() : loadScript(base + "vendor/socket.io.min.js");
    Promise.all([fetchConfig(), ioReady]).then(function (results) {
      var fromServer = results[0] || {};
      var config = {
        server: dataset.server || fromServer.server || "http://localhost:5005",
        title: dataset.title || "",
        clinic_name: dataset.clinicName || fromServer.clinic_name || "the clinic",
        clinic_phone: dataset.clinicPhone || fromServer.clinic_phone || "",
        clinic_hours: dataset.clinicHours || fromServer.clinic_hours || "office hours",
        emergency_number: dataset.emergencyNumber || fromServer.emergency_number || "911"
      };
      var widget = new Widget(config, window.io);
      window.ClinicChat = {
        open: function () { widget.open(); },
        close: function () { widget.close(); },
        send: function (text) { widget.send(text); }
      };
    }).catch(function (error) {
      if (window.console) window.console.error("Clinic chat could not start:", error);
    });
  }

  window.ClinicChat = { pending: true };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
