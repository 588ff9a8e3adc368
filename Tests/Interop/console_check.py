"""The operator console in a real headless Chromium (Debian's chromium + chromedriver, Selenium).

Run by SwitchboardServerTests.ConsoleTests:
    python3 console_check.py PORT ADMIN_TOKEN USER_TOKEN RULES_DIR SCREENSHOT_DIR
against a running Switchboard that watches RULES_DIR. Prints one line per check (with the
measured delays); exits 0 when all pass, 1 with the failing check.
"""
import asyncio
import json
import os
import sys
import threading
import time
import urllib.request

from realtime import AsyncRealtimeClient

from interop_support import subscribe
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CHANNEL = "collaboration:s1:c1"
# A check that should take about a second (one snapshot) may take this long on a busy machine
# before it fails; the delay measured is printed either way.
PATIENCE = 20


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def wait(driver, what, condition, timeout=PATIENCE):
    started = time.monotonic()
    try:
        WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: condition(d))
    except Exception as error:  # noqa: BLE001 - say what was awaited
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from error
    return time.monotonic() - started


def text_of(driver, element_id):
    return driver.find_element(By.ID, element_id).text


class Subscriber:
    """A Supabase Python client joined to CHANNEL, on a thread of its own."""

    def __init__(self, port, token):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client = AsyncRealtimeClient(f"ws://127.0.0.1:{port}/socket", token, auto_reconnect=False)

        async def join():
            await self.client.connect()
            channel = self.client.channel(CHANNEL, {"config": {"broadcast": {"self": False}, "presence": {"key": "console-user", "enabled": True}}})
            # Tracked once the join is answered (subscribe returns before that).
            await subscribe(channel, asyncio.get_running_loop().time() + PATIENCE)
            await channel.track({"status": "<i>online</i>"})

        asyncio.run_coroutine_threadsafe(join(), self.loop).result(timeout=PATIENCE)

    def close(self):
        try:
            asyncio.run_coroutine_threadsafe(self.client.close(), self.loop).result(timeout=5)
        except Exception:  # noqa: BLE001 - it may have been disconnected by the test
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)


def rest(port, token, event, payload):
    body = json.dumps({"messages": [{"topic": CHANNEL, "event": event, "payload": payload}]}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/broadcast", data=body, method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202, f"REST publish answered {response.status}"


def console_errors(driver):
    return [entry for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]


def main(port, admin, user, rules_dir, shots):
    base = f"http://127.0.0.1:{port}/console"
    driver = browser()
    subscriber = None
    try:
        # Signed in by the link serve prints in dev mode: the token in the fragment.
        driver.get(f"{base}#token={admin}")
        took = wait(driver, "the first snapshot", lambda d: text_of(d, "connections").isdigit())
        assert "#token" not in driver.current_url, "the token stayed in the address bar"
        stored = driver.execute_script("return sessionStorage.getItem('switchboard.console.token')")
        assert stored == admin, "the token is not in the tab's session storage"
        print(f"ok signed in by link, feed live after {took:.2f} s", flush=True)

        before = int(text_of(driver, "connections"))
        joined_at = time.monotonic()
        subscriber = Subscriber(port, user)
        wait(driver, "the connection count to rise", lambda d: int(text_of(d, "connections")) > before)
        wait(driver, "the channel in the table", lambda d: CHANNEL in text_of(d, "channel-rows"))
        print(f"ok a client joining shows in the counts {time.monotonic() - joined_at:.2f} s after it connected", flush=True)

        driver.find_element(By.ID, "filter").send_keys("collab")
        assert CHANNEL in text_of(driver, "channel-rows")
        driver.find_element(By.ID, "filter").send_keys("-nothing-matches")
        wait(driver, "the filter to hide the channel", lambda d: CHANNEL not in text_of(d, "channel-rows"), timeout=5)
        driver.find_element(By.ID, "filter").clear()
        print("ok the filter box filters channels", flush=True)

        # A broken rules file: its file:line shows, then the fix clears it.
        broken = os.path.join(rules_dir, "zz_broken.lua")
        with open(broken, "w") as handle:
            handle.write('channel "broken:{id}" {\n  kind = "shared",\n  join = function(user, ch) return true\n}\n')
        saved_at = time.monotonic()
        wait(driver, "the reload error", lambda d: "zz_broken.lua:" in text_of(d, "rules-errors"))
        print(f"ok a broken save shows its file:line {time.monotonic() - saved_at:.2f} s after it was written: {text_of(driver, 'rules-errors').splitlines()[0]}", flush=True)
        os.remove(broken)
        fixed_at = time.monotonic()
        wait(driver, "the error to clear", lambda d: text_of(d, "rules-errors") == "" and "No reload error" in text_of(d, "rules-state"))
        print(f"ok the fix clears it {time.monotonic() - fixed_at:.2f} s later", flush=True)

        driver.save_screenshot(os.path.join(shots, "console-main.png"))

        # The inspector: presence, a live tail with a REST message, escaped.
        driver.find_element(By.ID, "inspect-name").send_keys(CHANNEL)
        driver.find_element(By.CSS_SELECTOR, "#inspect-form button").click()
        wait(driver, "the inspected channel's presence", lambda d: "console-user" in text_of(d, "inspect-presence"))
        assert int(text_of(driver, "inspect-subscribers")) >= 1
        hostile = "<script>window.__pwned = 1</script><b>bold</b><img src=x onerror=window.__pwned=2>"
        rest(port, admin, "comment:added", {"comment_id": "c1", "text": hostile})
        wait(driver, "the REST message in the tail", lambda d: "comment:added" in text_of(d, "tail"))
        tail = driver.find_element(By.ID, "tail")
        assert "<script>window.__pwned = 1</script>" in tail.text, f"the payload is not shown as text: {tail.text!r}"
        assert not tail.find_elements(By.CSS_SELECTOR, "b, img, script"), "the payload became HTML"
        assert driver.execute_script("return window.__pwned") is None, "the payload ran"
        assert "<i>online</i>" in text_of(driver, "inspect-presence"), "the presence meta is not shown as text"
        print("ok a REST message appears in the tail, and a <script> payload renders as text", flush=True)

        driver.find_element(By.ID, "pause").click()
        rest(port, admin, "comment:added", {"comment_id": "c2", "text": "while paused"})
        wait(driver, "the paused count", lambda d: "1 waiting" in text_of(d, "tail-state"))
        assert "while paused" not in text_of(driver, "tail")
        driver.find_element(By.ID, "pause").click()
        wait(driver, "the held message", lambda d: "while paused" in text_of(d, "tail"), timeout=5)
        print("ok pause holds the tail and resume shows what came", flush=True)

        driver.find_element(By.ID, "send-event").clear()
        driver.find_element(By.ID, "send-event").send_keys("console:test")
        driver.find_element(By.CSS_SELECTOR, "#send-form button").click()
        wait(driver, "the test message sent", lambda d: text_of(d, "send-result") == "sent")
        wait(driver, "the test message in the tail", lambda d: "console:test" in text_of(d, "tail"))
        print("ok the form sends a test message", flush=True)
        driver.save_screenshot(os.path.join(shots, "console-inspector.png"))

        # Disconnect a user, after a confirmation.
        driver.find_element(By.ID, "disconnect-sub").send_keys("console-user")
        driver.find_element(By.CSS_SELECTOR, "#disconnect-form button").click()
        alert = WebDriverWait(driver, 5).until(lambda d: d.switch_to.alert)
        assert "console-user" in alert.text
        alert.accept()
        wait(driver, "the disconnect result", lambda d: "disconnected 1 connection" in text_of(d, "disconnect-result"))
        print("ok disconnecting a user asks first, then closes its connection", flush=True)

        errors = console_errors(driver)
        assert not errors, f"the browser console has errors: {errors}"
        print("ok no errors in the browser console", flush=True)

        # A phone's width: nothing wider than the screen.
        driver.set_window_size(390, 844)
        wait(driver, "the narrow window", lambda d: d.execute_script("return window.innerWidth") <= 400, timeout=5)
        overflow = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"the page is {overflow} px wider than a phone's screen"
        print("ok the page fits a phone's width", flush=True)

        # A token that is not an admin's is refused, and the page says why.
        driver.execute_script("sessionStorage.clear()")
        driver.get(base)
        wait(driver, "the sign-in form", lambda d: d.find_element(By.ID, "signin").is_displayed())
        driver.find_element(By.ID, "token").send_keys(user)
        driver.find_element(By.CSS_SELECTOR, "#signin-form button").click()
        wait(driver, "the refusal", lambda d: "Forbidden" in text_of(d, "signin-error"))
        assert not driver.find_element(By.ID, "app").is_displayed()
        print("ok a non-admin token is refused: " + text_of(driver, "signin-error"), flush=True)
    finally:
        if subscriber:
            subscriber.close()
        driver.quit()


if __name__ == "__main__":
    try:
        main(*sys.argv[1:6])
    except Exception as error:  # noqa: BLE001 - report any failure as one line
        print(f"FAIL {type(error).__name__}: {error}", flush=True)
        sys.exit(1)
    print("ALL PASSED", flush=True)
