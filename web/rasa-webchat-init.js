/*!
 * Starts rasa-webchat 1.0.1 (web/node_modules/rasa-webchat/lib/index.js, served as /vendor/rasa-webchat.js)
 * against the bot's socket.io channel. A file, not an inline script, so the page's CSP stays strict.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  var dataset = (script && script.dataset) || {};
  window.WebChat.default({
    selector: "#webchat",
    socketUrl: dataset.server,
    socketPath: "/socket.io/",
    title: dataset.title || "Ask a question",
    subtitle: "Not for emergencies",
    inputTextFieldHint: "Type your question...",
    params: { storage: "local" }
  }, null);
})();
