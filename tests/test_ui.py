"""ui.html in a real headless Chromium (selenium + the system chromium/chromedriver), against the real server and
engine around tiny models: sending, streaming, Stop, new conversation, edit and regenerate, error messages, a
reply full of HTML shown as text, and a phone-width layout.

Set NANOCHAT_UI_SCREENSHOT=docs/ui_screenshot.png to refresh the screenshot kept in the repository.
"""

import os
import shutil
import time

import httpx
import pytest

from nanochat.engine import Engine
from scripts.chat_web import ServerConfig, create_app
from tests.engine_utils import byte_tokenizer, random_model
from tests.web_utils import SCRIPTED_REPLY, SCRIPTED_TOOL_TEXT, BackgroundServer, scripted_model, scripted_tokenizer

CHROMIUM, CHROMEDRIVER = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                reason="needs chromium and chromedriver on PATH (Debian: apt-get install chromium "
                                       "chromium-driver; tests/run.sh installs them in CI)")


@pytest.fixture(scope="module")
def driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1000,760"):
        options.add_argument(arg)
    d = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    yield d
    d.quit()


@pytest.fixture(scope="module")
def scripted():
    tok = scripted_tokenizer()
    app = create_app([Engine(scripted_model(tok), tok)], tok, ServerConfig(model_name="tiny-scripted-model"))
    with BackgroundServer(app) as s:
        yield s


@pytest.fixture(scope="module")
def slow_random():
    """A random model with a long context: greedy replies never stop by themselves, so there is time to press Stop."""
    tok = byte_tokenizer()
    app = create_app([Engine(random_model(sequence_len=2048), tok)], tok, ServerConfig(max_tokens=2000))
    with BackgroundServer(app) as s:
        yield s


def wait(driver, condition, timeout=15):
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: condition(d))


def open_page(driver, server):
    driver.get(server.url + "/")
    wait(driver, lambda d: d.execute_script("return document.readyState") == "complete")


def messages(driver):
    """[(role, text of the message body)] as shown, read with textContent (exactly what was inserted)."""
    rows = driver.execute_script("""return Array.from(document.querySelectorAll('#log .msg')).map(m =>
        [m.classList.contains('user') ? 'user' : 'assistant', m.querySelector('.body').textContent]);""")
    return [tuple(r) for r in rows]


def idle(driver):
    return driver.find_element("id", "send").is_displayed() and not driver.find_element("id", "stop").is_displayed()


def send(driver, text):
    from selenium.webdriver.common.keys import Keys
    box = driver.find_element("id", "input")
    box.send_keys(text)
    box.send_keys(Keys.ENTER)


def send_and_wait(driver, text):
    n = len(messages(driver))
    send(driver, text)
    wait(driver, lambda d: len(messages(d)) == n + 2 and idle(d))
    return messages(driver)


def served(server):
    return httpx.get(server.url + "/stats").json()["requests_served"]


def test_reply_streams_in_as_text_and_html_in_it_never_runs(driver, scripted, tmp_path):
    open_page(driver, scripted)
    assert send_and_wait(driver, "Show me some HTML") == [("user", "Show me some HTML"), ("assistant", SCRIPTED_REPLY)]
    tool = driver.find_elements("css selector", "#log .msg.assistant .body .tool")
    assert [t.text for t in tool] == [SCRIPTED_TOOL_TEXT]
    time.sleep(0.5)  # time for a (wrongly) created <img src=x> to fail loading and fire onerror
    assert driver.find_elements("css selector", "#log img") == []
    assert driver.execute_script("return window.__pwned") is None
    path = os.environ.get("NANOCHAT_UI_SCREENSHOT") or str(tmp_path / "ui.png")
    assert driver.save_screenshot(path)
    # Control: the same reply inserted as HTML does run its script, so the check above could fail.
    driver.execute_script("document.createElement('div').innerHTML = arguments[0];", SCRIPTED_REPLY)
    wait(driver, lambda d: d.execute_script("return window.__pwned") == 1, timeout=5)


def test_enter_sends_and_shift_enter_adds_a_line(driver, scripted):
    from selenium.webdriver.common.keys import Keys
    open_page(driver, scripted)
    box = driver.find_element("id", "input")
    box.send_keys("line one", Keys.SHIFT, Keys.ENTER, Keys.SHIFT, "line two")
    assert messages(driver) == [] and box.get_attribute("value") == "line one\nline two"
    box.send_keys(Keys.ENTER)
    wait(driver, lambda d: len(messages(d)) == 2 and idle(d))
    assert messages(driver)[0] == ("user", "line one\nline two")
    assert box.get_attribute("value") == ""


def test_regenerate_edit_and_new_conversation(driver, scripted):
    open_page(driver, scripted)
    send_and_wait(driver, "first question")
    send_and_wait(driver, "second question")
    before = served(scripted)
    driver.find_element("xpath", "//button[text()='Regenerate']").click()
    wait(driver, lambda d: served(scripted) == before + 1 and idle(d) and len(messages(d)) == 4)
    assert messages(driver)[3] == ("assistant", SCRIPTED_REPLY)

    # edit the first question: everything after it is replaced by a new reply
    driver.find_elements("xpath", "//button[text()='Edit']")[0].click()
    box = driver.find_element("css selector", "#log .msg textarea")
    assert box.get_attribute("value") == "first question"
    box.clear()
    box.send_keys("an edited question")
    driver.find_element("xpath", "//button[text()='Save & regenerate']").click()
    wait(driver, lambda d: served(scripted) == before + 2 and idle(d))
    assert messages(driver) == [("user", "an edited question"), ("assistant", SCRIPTED_REPLY)]

    driver.find_element("id", "new-chat").click()
    assert messages(driver) == [] and driver.find_element("id", "empty").is_displayed()


def test_stop_aborts_the_stream_and_frees_the_slot(driver, slow_random):
    open_page(driver, slow_random)
    driver.execute_script("const t = document.getElementById('temperature'); t.value = '0';"
                          "t.dispatchEvent(new Event('input'));")  # greedy: this reply would run 2000 tokens
    send(driver, "talk for a long time")
    wait(driver, lambda d: len(messages(d)) == 2 and len(messages(d)[1][1]) >= 5)  # text is arriving
    assert driver.find_element("id", "stop").is_displayed()
    driver.find_element("id", "stop").click()
    wait(driver, lambda d: idle(d) and "Stopped." in d.find_element("css selector", "#log .note").text)
    partial = messages(driver)[1][1]
    assert 5 <= len(partial)
    wait(driver, lambda d: httpx.get(slow_random.url + "/stats").json()["active_rows"] == 0, timeout=5)
    assert httpx.get(slow_random.url + "/stats").json()["tokens_generated"] < 1000
    assert messages(driver)[1][1] == partial  # nothing more arrives


def test_server_errors_are_shown_with_the_servers_message(driver, scripted):
    open_page(driver, scripted)
    driver.find_element("id", "settings-button").click()
    top_k = driver.find_element("id", "top-k")
    top_k.clear()
    top_k.send_keys("500")  # out of range: the server refuses, naming top_k
    send(driver, "hello")
    error = wait(driver, lambda d: d.find_elements("css selector", "#log .error"))[0]
    assert "top_k" in error.text and "less than or equal to 200" in error.text
    wait(driver, idle)


def test_server_down_is_reported(driver):
    tok = scripted_tokenizer()
    server = BackgroundServer(create_app([Engine(scripted_model(tok), tok)], tok)).start()
    open_page(driver, server)
    server.stop()
    send(driver, "anyone there?")
    error = wait(driver, lambda d: d.find_elements("css selector", "#log .error"))[0]
    assert "Cannot reach the server" in error.text
    wait(driver, idle)


def test_phone_width_has_no_horizontal_scroll(driver, scripted):
    driver.set_window_size(390, 800)
    try:
        open_page(driver, scripted)
        send_and_wait(driver, "a long message " * 20)
        overflow = driver.execute_script("return document.documentElement.scrollWidth - "
                                         "document.documentElement.clientWidth")
        assert overflow <= 0
        assert driver.find_element("id", "send").is_displayed() and driver.find_element("id", "new-chat").is_displayed()
    finally:
        driver.set_window_size(1000, 760)
