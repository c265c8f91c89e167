"""The rollout console (`/console`) in a real browser: headless Chromium from Debian
(`chromium`, `chromium-driver`), driven by selenium (pinned in requirements.txt), against a
real `sark serve` (`$SARK`, default target/release/sark) under load.

    SARK=target/release/sark target/py-venv/bin/python -m pytest -q host/tests/console

The server runs the example policies (signed) with a candidate bundle in shadow mode whose
gateway policy drops the business-hours rule, so the weekend request of an admin
(policies/samples/admin-critical-weekend.json, whose `parameters.password` is masked) is
decided differently; a background thread sends the sample inputs for 40 users. The tests
run in order on one server and one browser and save screenshots to target/console-*.png:
signin (the sign-in form), features (the flags after a change, with who moved), charts (the
A/B comparison with data points), canary (a masked disagreement), bundle (the bundle, a
refused reload and the reload after it).
"""

import base64
import hashlib
import http.client
import json
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

ROOT = Path(__file__).resolve().parents[3]
SARK = Path(os.environ.get("SARK", ROOT / "target/release/sark"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
SHOTS = ROOT / "target"
TOKEN = "console-test-token"
# Long enough for a slow CI machine, short enough to fail fast.
DEADLINE = 30.0

CONFIG = f"""
server:
  admin_token: {TOKEN}
  reload_poll_ms: 200
  timeseries_interval_ms: 1000
features:
  wasm_engine: {{ rollout_percentage: 50 }}
  policy_canary: {{ mode: shadow }}
decision_log:
  mask: [/input/parameters/password, /input/parameters/api_key]
"""

# The candidate's change: critical tools are allowed outside business hours.
BUSINESS_HOURS_RULE = """\tsensitivity == "critical"
\tnot within_business_hours
}"""


def sark(*args, cwd=None) -> str:
    out = subprocess.run([str(SARK), *args], capture_output=True, text=True, cwd=cwd)
    assert out.returncode == 0, f"sark {args} failed: {out.stderr}"
    return out.stdout


def eventually(what, check, deadline=DEADLINE):
    """Polls `check` until it returns something truthy; fails naming `what`."""
    end = time.monotonic() + deadline
    last = None
    while time.monotonic() < end:
        try:
            last = check()
            if last:
                return last
        except Exception as e:  # a not-yet-rendered element, a request in flight
            last = e
        time.sleep(0.1)
    pytest.fail(f"timed out after {deadline} s waiting for {what} (last: {last!r})")


def key_id(public_pem: Path) -> str:
    """sark's key id: 16 hex digits of the sha-256 of the raw Ed25519 public key."""
    body = public_pem.read_text().split("-----")[2]
    der = base64.b64decode("".join(body.split()))
    return hashlib.sha256(der[-32:]).hexdigest()[:16]


class Server:
    """A real `sark serve` on an ephemeral port; stopped by `stop()`."""

    def __init__(self, workdir: Path, args: list):
        self.stderr = open(workdir / "serve.stderr", "w+")
        self.proc = subprocess.Popen(
            [str(SARK), "serve", "--addr", "127.0.0.1:0", *args],
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            env={k: v for k, v in os.environ.items() if k != "SARK_ADMIN_TOKEN"},
        )
        for line in self.proc.stdout:
            if line.startswith("listening on "):
                self.base = line.split()[-1]
                break
        else:
            self.stderr.seek(0)
            pytest.fail(f"sark serve did not start: {self.stderr.read()}")
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()
        host, port = self.base.removeprefix("http://").rsplit(":", 1)
        self.host, self.port = host, int(port)

    def request(self, method, path, token=None, body=None):
        """(status, headers, body text) of one request."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        conn.request(method, path, None if body is None else json.dumps(body), headers)
        r = conn.getresponse()
        text = r.read().decode()
        conn.close()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), text

    def admin(self, path):
        status, _, text = self.request("GET", path, TOKEN)
        assert status == 200, f"GET {path}: {status} {text}"
        return json.loads(text)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()


class Load(threading.Thread):
    """The sample inputs for 40 users, about 40 decisions a second, until stopped."""

    def __init__(self, server: Server):
        super().__init__(daemon=True)
        self.server = server
        self.stop = threading.Event()
        self.statuses = {}
        self.samples = []
        for f in sorted((ROOT / "policies/samples").glob("*.json")):
            entrypoint = "mcp/a2a/decision" if "a2a" in f.name else "mcp/gateway/decision"
            self.samples.append((entrypoint, json.loads(f.read_text())))

    def run(self):
        conn = http.client.HTTPConnection(self.server.host, self.server.port, timeout=10)
        i = 0
        while not self.stop.is_set():
            entrypoint, sample = self.samples[i % len(self.samples)]
            doc = json.loads(json.dumps(sample))
            if isinstance(doc.get("user"), dict):
                doc["user"]["id"] = f"user-{(i // len(self.samples)) % 40}"
            try:
                conn.request(
                    "POST",
                    f"/v1/data/{entrypoint}",
                    json.dumps({"input": doc}),
                    {"Content-Type": "application/json"},
                )
                r = conn.getresponse()
                r.read()
                self.statuses[r.status] = self.statuses.get(r.status, 0) + 1
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(self.server.host, self.server.port, timeout=10)
            i += 1
            self.stop.wait(0.025)
        conn.close()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The bundles, the server under load and the browser, shared by the tests in order."""
    d = tmp_path_factory.mktemp("console")
    sark("keygen", "-o", str(d / "key"))
    active = d / "active.wasm"
    sark("build", str(ROOT / "policies"), "-o", str(active), "--signing-key", str(d / "key"))
    candidate_src = d / "candidate"
    shutil.copytree(ROOT / "policies", candidate_src)
    rego = candidate_src / "mcp/gateway/gateway.rego"
    text = rego.read_text()
    assert text.count(BUSINESS_HOURS_RULE) == 1, "the business-hours rule moved"
    rego.write_text(text.replace(BUSINESS_HOURS_RULE, BUSINESS_HOURS_RULE[:-1] + "\tfalse\n}"))
    candidate = d / "candidate.wasm"
    sark(
        "build", str(candidate_src), "-o", str(candidate),
        "--revision", "mcp-policies-1.1.0-rc1", "--signing-key", str(d / "key"),
    )
    (d / "sark.yaml").write_text(CONFIG)
    server = Server(d, [
        "--bundle", str(active), "--candidate-bundle", str(candidate),
        "--verification-key", str(d / "key.pub"), "--config", str(d / "sark.yaml"),
    ])
    load = Load(server)
    load.start()

    options = Options()
    options.binary_location = CHROMIUM
    for arg in [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--window-size=1400,1000", "--no-first-run", "--disable-extensions",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-default-apps", f"--user-data-dir={d / 'chromium'}",
    ]:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # Selenium Manager would look for a driver online: the Debian one is given.
    os.environ.setdefault("SE_OFFLINE", "true")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    state = {
        "dir": d, "server": server, "load": load, "driver": driver, "logs": [],
        "active": active, "key_id": key_id(d / "key.pub"),
    }
    try:
        yield state
    finally:
        driver.quit()
        load.stop.set()
        load.join(timeout=10)
        server.stop()


def drain(env):
    """Moves the browser's console entries so far into `env["logs"]`."""
    env["logs"].extend(env["driver"].get_log("browser"))


def shot(env, name, element=None):
    SHOTS.mkdir(exist_ok=True)
    path = SHOTS / f"console-{name}.png"
    driver = env["driver"]
    if element is None:
        driver.save_screenshot(str(path))
    else:
        # A window tall enough for the whole element (a screenshot stops at the viewport).
        height = driver.execute_script("return arguments[0].getBoundingClientRect().height", element)
        driver.set_window_size(1400, int(max(1000, height + 200)))
        driver.execute_script("arguments[0].scrollIntoView()", element)
        element.screenshot(str(path))
        driver.set_window_size(1400, 1000)
    assert path.stat().st_size > 0


def by_id(env, id_):
    return env["driver"].find_element(By.ID, id_)


def pct(server, feature):
    return server.admin("/admin/features")["features"][feature]["rollout_percentage"]


def test_without_the_token_the_console_and_its_data_answer_401(env):
    server = env["server"]
    for path in [
        "/console", "/console/app.js", "/console/app.css", "/console/uplot.js",
        "/console/nope.js", "/admin/timeseries", "/admin/canary", "/admin/bundle",
        "/admin/features",
    ]:
        for token in [None, "wrong-token"]:
            status, _, _ = server.request("GET", path, token)
            assert status == 401, f"GET {path} with {token!r}: {status}"
    status, headers, body = server.request("GET", "/console")
    assert headers["www-authenticate"].startswith("Bearer")
    assert 'id="sign-in-form"' in body and "text/html" in headers["content-type"]
    # With the token: the page, the assets and the series.
    status, headers, body = server.request("GET", "/console", TOKEN)
    assert status == 200 and 'data-auth="header"' in body
    csp = headers["content-security-policy"]
    assert "script-src 'sha256-" in csp and "connect-src 'self'" in csp
    assert "unsafe-inline" not in csp and "http" not in csp
    assert headers["cache-control"] == "no-store"
    status, headers, body = server.request("GET", "/console/app.js", TOKEN)
    assert status == 200 and headers["content-type"].startswith("text/javascript")
    assert headers["x-content-type-options"] == "nosniff" and "SarkConsole" in body
    status, headers, body = server.request("GET", "/console/uplot.js", TOKEN)
    assert status == 200 and "uPlot" in body
    status, _, _ = server.request("GET", "/console/nope.js", TOKEN)
    assert status == 404
    series = server.admin("/admin/timeseries")
    assert series["interval_ms"] == 1000 and series["capacity"] == 720
    status, _, body = server.request("GET", "/admin/timeseries?since=soon", TOKEN)
    assert status == 400 and "since" in json.loads(body)["message"]


def test_sign_in(env):
    driver, server = env["driver"], env["server"]
    driver.get(server.base + "/console")
    form = eventually("the sign-in form", lambda: by_id(env, "sign-in").is_displayed() and by_id(env, "sign-in"))
    label = driver.find_element(By.CSS_SELECTOR, "label[for=token]")
    assert label.text == "Admin token"
    assert driver.switch_to.active_element == by_id(env, "token"), "the token field has the focus"
    shot(env, "signin")
    token = by_id(env, "token")
    token.send_keys("wrong-token", Keys.ENTER)
    eventually("the refusal", lambda: "refused" in by_id(env, "sign-in-error").text)
    assert form.is_displayed() and not by_id(env, "app").is_displayed()
    token.clear()
    token.send_keys(TOKEN, Keys.ENTER)
    eventually("the console", lambda: by_id(env, "app").is_displayed())
    eventually("the flags", lambda: len(driver.find_elements(By.CSS_SELECTOR, "#features-table tbody tr")) == 3)
    assert driver.execute_script("return sessionStorage.getItem('sark.console.token')") == TOKEN
    drain(env)


def test_flags_are_read_changed_and_rolled_back(env):
    driver, server = env["driver"], env["server"]
    features = server.admin("/admin/features")["features"]
    for name, feature in features.items():
        eventually(
            f"{name} at {feature['rollout_percentage']}%",
            lambda: driver.find_element(By.CSS_SELECTOR, f"#current-{name} .pct-value").text
            == f"{feature['rollout_percentage']}%",
        )
    assert features["wasm_engine"]["rollout_percentage"] == 50
    assert "XXH3-64" in by_id(env, "bucketing-rule").text
    # Raise wasm_engine from 50% to 80%.
    field = by_id(env, "pct-wasm_engine")
    field.clear()
    field.send_keys("80")
    by_id(env, "apply-wasm_engine").click()
    eventually("wasm_engine at 80% in /admin/features", lambda: pct(server, "wasm_engine") == 80)
    raised = "Raising wasm_engine from 50% to 80% moved 30% of users (buckets 50–79) onto the component (wasm path)."
    eventually("who moved", lambda: raised in by_id(env, "moves").text)
    eventually("the table at 80%", lambda: by_id(env, "current-wasm_engine").text.startswith("80%"))
    assert raised in by_id(env, "app-status").text
    # An invalid percentage is refused in the page, before any request.
    field.clear()
    field.send_keys("150", Keys.ENTER)
    eventually("the refusal of 150", lambda: "whole number from 0 to 100" in by_id(env, "app-status").text)
    assert field.get_attribute("aria-invalid") == "true" and pct(server, "wasm_engine") == 80
    # Roll it back.
    by_id(env, "rollback-wasm_engine").click()
    eventually("wasm_engine at 0% in /admin/features", lambda: pct(server, "wasm_engine") == 0)
    lowered = "Lowering wasm_engine from 80% to 0% moved 80% of users (buckets 0–79) back to the native path."
    eventually("who moved back", lambda: lowered in by_id(env, "moves").text)
    # Back to half and half, for the comparison.
    field.clear()
    field.send_keys("50", Keys.ENTER)
    eventually("wasm_engine at 50% again", lambda: pct(server, "wasm_engine") == 50)
    eventually("who moved again", lambda: "Raising wasm_engine from 0% to 50%" in by_id(env, "moves").text)
    shot(env, "features", by_id(env, "features"))
    drain(env)


def test_charts_show_both_implementations(env):
    driver, server = env["driver"], env["server"]

    def both_paths():
        points = server.admin("/admin/timeseries")["points"]
        return [p for p in points if p["wasm"]["requests"] > 0 and p["native"]["requests"] > 0]

    eventually("points with decisions on both paths", both_paths)
    figures = driver.find_elements(By.CSS_SELECTOR, "figure.chart")
    assert len(figures) == 6
    eventually(
        "five points in every chart",
        lambda: all(int(f.get_attribute("data-points")) >= 5 for f in figures),
    )
    for f in figures:
        canvas = f.find_element(By.TAG_NAME, "canvas")
        assert canvas.size["width"] > 100 and canvas.size["height"] > 50, f.get_attribute("id")
        assert f.find_element(By.CSS_SELECTOR, ".plot").get_attribute("role") == "img"
    number = re.compile(r"^\d+(\.\d+)? (µs|ms)$")
    eventually(
        "latest latencies of both paths as text",
        lambda: all(
            number.match(by_id(env, f"value-{path}-{q}").text)
            for path in ["wasm", "native"]
            for q in ["p50", "p95", "p99"]
        ),
    )
    assert by_id(env, "value-wasm-requests_per_s").text.endswith("/s")
    assert "Latest:" in by_id(env, "latest-latency-wasm").text
    last = server.admin("/admin/timeseries")["points"][-1]["t"]
    assert server.admin(f"/admin/timeseries?since={last}")["points"] == []
    shot(env, "charts", by_id(env, "comparison"))
    drain(env)


def test_a_canary_disagreement_is_shown_masked(env):
    driver, server = env["driver"], env["server"]
    canary = eventually(
        "a disagreement in /admin/canary",
        lambda: (lambda c: c if c["recent"] else None)(server.admin("/admin/canary")),
    )
    assert canary["mode"] == "shadow" and canary["shadowed_percentage"] == 100
    assert canary["candidate"]["revision"] == "mcp-policies-1.1.0-rc1"
    recent = canary["recent"][0]
    assert recent["erased"] == ["/input/parameters/password"]
    assert "password" not in recent["input"]["parameters"]
    assert recent["active"]["result"]["allow"] is False
    assert recent["candidate"]["result"]["allow"] is True

    def shown():
        articles = driver.find_elements(By.CSS_SELECTOR, "#disagreements article")
        return articles and articles[0]

    eventually("a disagreement in the console", shown)
    # Under load the list changes at every refresh: pause it to read it.
    pause = by_id(env, "disagreements-pause")
    pause.click()
    assert pause.get_attribute("aria-pressed") == "true"
    article = shown()
    assert '"service": "api"' in article.find_element(By.CSS_SELECTOR, "pre.input").text
    assert "/input/parameters/password" in article.find_element(By.CSS_SELECTOR, ".erased").text
    assert '"allow": false' in article.find_element(By.CSS_SELECTOR, "pre.active").text
    assert '"allow": true' in article.find_element(By.CSS_SELECTOR, "pre.candidate").text
    # The facts are redrawn at every refresh: read them within a retry.
    eventually(
        "the disagreement count and the mode",
        lambda: re.match(r"^[1-9]\d* \(", by_id(env, "canary-disagreements").text)
        and by_id(env, "canary-mode").text == "shadow",
    )
    page = driver.page_source
    assert "hunter2" not in page and "sk-live-123" not in page, "a masked value reached the page"
    shot(env, "canary", by_id(env, "canary"))
    pause.click()
    assert pause.get_attribute("aria-pressed") == "false"
    drain(env)


def test_bundle_and_a_refused_reload(env):
    driver, server = env["driver"], env["server"]
    health = server.admin("/health")
    expected = {
        "bundle-revision": "mcp-policies-1.0.0",
        "bundle-hash": health["bundle"]["content_hash"],
        "bundle-key": env["key_id"],
        "bundle-verification": env["key_id"],
    }
    eventually(
        "the revision, content hash and key ids",
        lambda: all(by_id(env, k).text == v for k, v in expected.items()),
    )
    assert "mcp-policies-1.1.0-rc1" in by_id(env, "bundle-candidate").text
    assert by_id(env, "cluster-state").text.startswith("Not clustered")
    rows = lambda: driver.find_elements(By.CSS_SELECTOR, "#reloads tbody tr")  # noqa: E731
    assert "start" in rows()[-1].text and "success" in rows()[-1].text
    # A broken bundle file is refused; the old bundle stays and the console shows why.
    good = env["active"].read_bytes()
    env["active"].write_bytes(good[:100_000])
    newest = "#reloads tbody tr:first-child"
    failure = eventually(
        "the refused reload",
        lambda: driver.execute_script(
            "const r = document.querySelector(arguments[0]);"
            "return r && r.className === 'failure'"
            " && [r.textContent, r.querySelector('.reload-error').textContent];",
            newest,
        ),
    )
    assert "bundle file changed" in failure[0] and failure[1], failure
    eventually("the last error", lambda: by_id(env, "bundle-error").text != "none")
    bundle = server.admin("/admin/bundle")
    assert bundle["reloads"][-1]["result"] == "failure" and bundle["reload"]["last_error"]
    # Put it back: reloaded, the error cleared.
    env["active"].write_bytes(good)
    eventually(
        "the reload after it",
        lambda: driver.execute_script(
            "const rows = document.querySelectorAll('#reloads tbody tr');"
            "return rows.length >= 3 && rows[0].className === 'success';"
        ),
    )
    eventually("the error cleared", lambda: by_id(env, "bundle-error").text == "none")
    shot(env, "bundle", by_id(env, "bundle"))
    drain(env)


def test_rollback_of_every_feature_by_keyboard(env):
    driver, server = env["driver"], env["server"]
    before = server.admin("/admin/features")["features"]
    opener = by_id(env, "rollback-all")
    opener.send_keys(Keys.ENTER)
    eventually("the confirmation", lambda: by_id(env, "rollback-all-confirm").is_displayed())
    assert driver.switch_to.active_element == by_id(env, "rollback-all-no"), "Cancel has the focus"
    driver.switch_to.active_element.send_keys(Keys.ESCAPE)
    eventually("the confirmation closed", lambda: not by_id(env, "rollback-all-confirm").is_displayed())
    assert driver.switch_to.active_element == opener
    assert server.admin("/admin/features")["features"] == before, "Escape changed nothing"
    opener.send_keys(Keys.ENTER)
    eventually("the confirmation again", lambda: by_id(env, "rollback-all-confirm").is_displayed())
    driver.switch_to.active_element.send_keys(Keys.SHIFT, Keys.TAB)
    assert driver.switch_to.active_element == by_id(env, "rollback-all-yes")
    driver.switch_to.active_element.send_keys(Keys.ENTER)
    eventually(
        "every feature at 0%",
        lambda: all(f["rollout_percentage"] == 0 for f in server.admin("/admin/features")["features"].values()),
    )
    eventually("who moved", lambda: "Lowering decision_cache from 100% to 0%" in by_id(env, "moves").text)
    assert "Lowering wasm_engine from 50% to 0% moved 50% of users (buckets 0–49) back to the native path." in by_id(env, "moves").text
    drain(env)


def test_the_browser_console_has_no_errors(env):
    drain(env)
    base = env["server"].base
    # Expected, and only these: the 401 of the sign-in page itself (no token on a
    # navigation) and of the wrong token the sign-in test typed.
    expected = [f"{base}/console - ", f"{base}/admin/features - "]
    errors = [
        e for e in env["logs"]
        if e["level"] == "SEVERE"
        and not (
            e.get("source") == "network"
            and "status of 401" in e["message"]
            and any(e["message"].startswith(p) for p in expected)
        )
    ]
    assert not errors, json.dumps(errors, indent=2)
    assert sum(1 for e in env["logs"] if e["level"] == "SEVERE") <= 2
    assert env["load"].statuses.get(200, 0) > 100, env["load"].statuses
    assert set(env["load"].statuses) == {200}, env["load"].statuses
