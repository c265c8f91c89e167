// The console's bootstrap, inline in /console (allowed by the page's Content-Security-Policy
// by its sha-256). A browser cannot add an Authorization header to <script src>, so this
// script signs in (the admin token, checked against /admin/features and kept in this tab's
// sessionStorage), fetches the application's assets with the header, and injects them as
// inline style and script elements (their hashes are in the policy too).
(function () {
  'use strict';

  var KEY = 'sark.console.token';
  // In this order: the styles, then the chart library, then the application.
  var ASSETS = [
    ['uplot.css', 'style'],
    ['app.css', 'style'],
    ['uplot.js', 'script'],
    ['app.js', 'script'],
  ];
  // `header`: the page itself was requested with a valid Authorization header (a proxy adds
  // it), so requests without one are authorized the same way.
  var viaHeader = document.documentElement.dataset.auth === 'header';

  function byId(id) { return document.getElementById(id); }

  function storedToken() {
    try { return sessionStorage.getItem(KEY); } catch (e) { return null; }
  }
  function storeToken(token) {
    try { sessionStorage.setItem(KEY, token); } catch (e) { /* private mode: this page only */ }
  }
  function forgetToken() {
    try { sessionStorage.removeItem(KEY); } catch (e) { /* nothing stored */ }
  }

  function authHeaders(token) {
    return token ? { Authorization: 'Bearer ' + token } : {};
  }

  function showSignIn(message) {
    byId('loading').hidden = true;
    byId('app').hidden = true;
    byId('session').hidden = true;
    byId('sign-in').hidden = false;
    byId('sign-in-error').textContent = message || '';
    byId('token').focus();
  }

  function signOut(message) {
    forgetToken();
    if (message) {
      // A refused token: back to the form at once, with why.
      showSignIn(message);
      return;
    }
    window.location.reload();
  }

  // Fetches every asset (all or none), then injects them in order.
  async function inject(token) {
    var texts = await Promise.all(ASSETS.map(async function (asset) {
      var response = await fetch('/console/' + asset[0], {
        headers: authHeaders(token),
        cache: 'no-store',
        credentials: 'omit',
      });
      if (response.status === 401) {
        throw new Refused();
      }
      if (!response.ok) {
        throw new Error('/console/' + asset[0] + ' answered ' + response.status);
      }
      return [asset[1], await response.text()];
    }));
    texts.forEach(function (asset) {
      var element = document.createElement(asset[0]);
      element.textContent = asset[1];
      document.head.appendChild(element);
    });
    if (!window.SarkConsole) {
      throw new Error('the console script did not start');
    }
  }

  // Shows the console (its assets injected once: signing in again after a refused token
  // reuses them).
  async function load(token) {
    byId('sign-in').hidden = true;
    byId('loading').hidden = false;
    if (!window.SarkConsole) {
      await inject(token);
    }
    byId('loading').hidden = true;
    byId('session').hidden = false;
    byId('session-label').textContent = token ? 'Signed in with the admin token' : 'Authorized by the request header';
    byId('sign-out').hidden = !token;
    var app = byId('app');
    app.hidden = false;
    window.SarkConsole.start({
      root: app,
      token: token,
      signOut: function () { signOut('The server refused the token; sign in again.'); },
    });
  }

  function Refused() {}

  async function start(token) {
    try {
      await load(token);
    } catch (e) {
      if (e instanceof Refused) {
        signOut('The server refused the stored token; sign in again.');
      } else {
        showSignIn('The console could not load: ' + e.message);
      }
    }
  }

  byId('sign-out').addEventListener('click', function () { signOut(); });

  byId('sign-in-form').addEventListener('submit', async function (event) {
    event.preventDefault();
    var input = byId('token');
    var submit = byId('sign-in-submit');
    var token = input.value.trim();
    var error = byId('sign-in-error');
    if (!token) {
      error.textContent = 'Enter the admin token.';
      input.focus();
      return;
    }
    submit.disabled = true;
    error.textContent = 'Checking the token…';
    try {
      var response = await fetch('/admin/features', {
        headers: authHeaders(token),
        cache: 'no-store',
        credentials: 'omit',
      });
      if (response.ok) {
        storeToken(token);
        input.value = '';
        error.textContent = '';
        await start(token);
      } else if (response.status === 401) {
        error.textContent = 'The server refused this token.';
        input.select();
      } else if (response.status === 404) {
        error.textContent = 'The admin API is off on this server: set server.admin_token or SARK_ADMIN_TOKEN.';
      } else {
        error.textContent = 'The admin API answered ' + response.status + '.';
      }
    } catch (e) {
      error.textContent = 'Cannot reach the server: ' + e.message;
    } finally {
      submit.disabled = false;
    }
  });

  var token = storedToken();
  if (token) {
    start(token);
  } else if (viaHeader) {
    start(null);
  } else {
    showSignIn();
  }
})();
