"use strict";
// Security keys and passkeys on the keyless sign-in and account pages (W3C WebAuthn Level 3
// JSON helpers). The pages' Content-Security-Policy lets only this file run.
(function () {
  function csrf() {
    const field = document.querySelector("input[name=csrf_token]");
    return field ? field.value : "";
  }
  async function post(url, fields) {
    const response = await fetch(url, {
      method: "POST", body: new URLSearchParams(fields), credentials: "same-origin",
      headers: { "Accept": "application/json" },
    });
    const data = await response.json();
    if (!response.ok) throw new Error(data.message || data.error_description || response.status);
    return data;
  }
  function show(id, text) {
    const element = document.getElementById(id);
    element.textContent = text;
    element.hidden = false;
  }
  const register = document.getElementById("register-key");
  if (register) {
    register.addEventListener("click", async function () {
      try {
        const options = PublicKeyCredential.parseCreationOptionsFromJSON(
          JSON.parse(register.dataset.options));
        const credential = await navigator.credentials.create({ publicKey: options });
        const result = await post(register.dataset.action, {
          handle: register.dataset.handle, credential: JSON.stringify(credential.toJSON()),
          csrf_token: csrf(),
        });
        register.hidden = true;
        show("key-result", "Security key registered for " + result.email + ".");
      } catch (error) {
        show("key-error", String(error.message || error));
      }
    });
  }
  const login = document.getElementById("key-login");
  if (login) {
    login.addEventListener("click", async function () {
      try {
        const username = document.getElementById("username").value;
        const start = await post(login.dataset.options, { username: username, csrf_token: csrf() });
        const options = PublicKeyCredential.parseRequestOptionsFromJSON(JSON.parse(start.options));
        const credential = await navigator.credentials.get({ publicKey: options });
        const fields = { handle: start.handle, credential: JSON.stringify(credential.toJSON()) };
        for (const input of document.querySelectorAll("#login input[type=hidden]")) {
          fields[input.name] = input.value;
        }
        const done = await post(login.dataset.login, fields);
        window.location.assign(done.redirect);
      } catch (error) {
        show("key-error", String(error.message || error));
      }
    });
  }
})();
