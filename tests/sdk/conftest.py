"""What the SDK tests share: the daemon's address and keys, SDK clients pointed at it,
the fake relays' control APIs, and the admin API for making keys.

The environment comes from the Rust harness (apimond/tests/proxy_sdk.rs), which starts
the relays and the daemon; run it through scripts/test-proxy-sdk.sh.
"""

import json
import os
import time

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import types as genai_types


def _env(name):
    value = os.environ.get(name)
    if not value:
        pytest.exit(f"{name} is not set: run these tests through scripts/test-proxy-sdk.sh", 2)
    return value


URL = _env("APIMON_URL")
ADMIN = _env("APIMON_ADMIN_TOKEN")
MASTER = _env("APIMON_MASTER_TOKEN")
KEY = _env("APIMON_PROXY_KEY")
CHANNEL_KEY = _env("APIMON_CHANNEL_KEY")
CHANNELS = json.loads(_env("APIMON_CHANNELS"))
RELAYS = json.loads(_env("APIMON_RELAYS"))
KEYS_FILE = _env("APIMON_SDK_KEYS_FILE")


def openai_client(key):
    # No SDK retries: each test counts exactly what reached the relays.
    return openai.OpenAI(base_url=f"{URL}/v1", api_key=key, max_retries=0, timeout=30)


def anthropic_client(key):
    return anthropic.Anthropic(base_url=URL, api_key=key, max_retries=0, timeout=30)


def genai_client(key, api_version=None):
    """`api_version` None: the SDK's own choice (current ones use `/v1/models/...`)."""
    options = genai_types.HttpOptions(base_url=URL, timeout=30_000, api_version=api_version)
    return genai.Client(api_key=key, http_options=options)


class Relay:
    """A fake relay's control API (testkit/src/control.rs)."""

    def __init__(self, url):
        self.http = httpx.Client(base_url=url, timeout=10)

    def requests(self, model=None):
        params = {"model": model} if model else {}
        answer = self.http.get("/requests", params=params)
        answer.raise_for_status()
        return answer.json()["requests"]

    def fail(self, model, kind, status=None):
        body = {"kind": kind}
        if status is not None:
            body["status"] = status
        self.http.put(f"/failures/{model}", json=body).raise_for_status()

    def heal(self, model):
        self.http.delete(f"/failures/{model}").raise_for_status()

    def space_events(self, model, ms):
        self.http.put(f"/event-gaps/{model}", json={"ms": ms}).raise_for_status()

    def listen(self, on):
        self.http.put("/listening", json={"on": on}).raise_for_status()


@pytest.fixture(scope="session")
def relays():
    return {name: Relay(url) for name, url in RELAYS.items()}


@pytest.fixture(scope="session")
def admin():
    return httpx.Client(base_url=URL, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10)


@pytest.fixture
def make_key(admin):
    """Creates a proxy key with the given fields; the secret is noted for the harness,
    which checks that no relay ever received it."""

    def make(**fields):
        fields.setdefault("name", "sdk test key")
        answer = admin.post("/api/proxy/keys", json=fields)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        with open(KEYS_FILE, "a", encoding="utf-8") as out:
            out.write(body["proxy_key"] + "\n")
        return body["item"]["id"], body["proxy_key"]

    return make


def eventually(what, check, seconds=5.0):
    """Polls `check` until it returns something truthy; returns that."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.05)


def record_count(relays, model):
    return sum(len(r.requests(model)) for r in relays.values())
