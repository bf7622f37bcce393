"""Keys as an SDK user meets them: revoked, expired and over-limit keys are refused
saying which, a key reaches only the channels and models it allows, and a refused
request never reaches a relay."""

import time

import anthropic
import openai
import pytest

from conftest import CHANNELS, anthropic_client, genai_client, openai_client, record_count

ASK = [{"role": "user", "content": "Say hello"}]


def chat(key, model="gpt-4o-mini"):
    return openai_client(key).chat.completions.create(model=model, messages=ASK)


def test_an_unknown_key_is_refused_by_every_sdk():
    with pytest.raises(openai.AuthenticationError):
        chat("sk-not-a-key-0123456789012345678901234")
    with pytest.raises(anthropic.AuthenticationError):
        anthropic_client("sk-not-a-key").messages.create(
            model="claude-3-5-haiku", max_tokens=16, messages=ASK
        )
    gemini = genai_client("sk-not-a-key")
    with pytest.raises(Exception) as refused:
        gemini.models.generate_content(
            model="gemini-2.0-flash", contents="hi"
        )
    assert getattr(refused.value, "code", None) == 401, refused.value


def test_a_revoked_key_is_refused(admin, make_key, relays):
    key_id, key = make_key(name="to revoke")
    assert chat(key).choices[0].message.content == "Hello from gpt-4o-mini"
    assert admin.delete(f"/api/proxy/keys/{key_id}").json()["ok"] is True
    before = record_count(relays, "gpt-4o-mini")
    with pytest.raises(openai.PermissionDeniedError) as refused:
        chat(key)
    assert "revoked" in str(refused.value.body), refused.value.body
    assert record_count(relays, "gpt-4o-mini") == before


def test_an_expired_key_is_refused(make_key):
    _, key = make_key(name="short-lived", expires_at=time.time() + 1.5)
    assert chat(key).choices[0].message.content
    time.sleep(2.0)
    with pytest.raises(openai.PermissionDeniedError) as refused:
        chat(key)
    assert "expired" in str(refused.value.body), refused.value.body


def test_a_key_over_its_requests_per_minute_is_refused(make_key):
    _, key = make_key(name="two a minute", rpm_limit=2)
    chat(key)
    chat(key)
    with pytest.raises(openai.RateLimitError) as refused:
        chat(key)
    assert "rpm_limit" in str(refused.value.body), refused.value.body
    assert int(refused.value.response.headers["retry-after"]) >= 1


def test_a_key_past_its_daily_token_budget_is_refused(make_key):
    _, key = make_key(name="tiny budget", daily_token_budget=5)
    chat(key)  # spends more than 5 tokens: allowed, since it was under before

    def refused():
        try:
            chat(key)
        except openai.RateLimitError as e:
            return e
        return None

    deadline = time.monotonic() + 5
    error = refused()
    while error is None and time.monotonic() < deadline:
        time.sleep(0.2)
        error = refused()
    assert error is not None, "the budget never ran out"
    assert "daily_token_budget" in str(error.body), error.body


def test_a_key_reaches_only_what_it_allows(make_key, relays):
    beta = CHANNELS["beta"]
    _, key = make_key(name="beta chat only", allowed_models=["beta/gpt-4o-mini"])
    client = openai_client(key)
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=ASK)
    assert raw.headers["x-proxy-target-id"] == str(beta)
    client.chat.completions.create(model="beta/gpt-4o-mini", messages=ASK)
    before = record_count(relays, "gpt-4o-mini")
    for model in ["alpha/gpt-4o-mini", "beta/claude-3-5-haiku", "claude-3-5-haiku"]:
        with pytest.raises(openai.PermissionDeniedError):
            client.chat.completions.create(model=model, messages=ASK)
    assert record_count(relays, "gpt-4o-mini") == before
    assert {m.id for m in client.models.list()} == {"gpt-4o-mini", "beta/gpt-4o-mini"}

    _, key = make_key(name="alpha only", allowed_target_ids=[CHANNELS["alpha"]])
    client = openai_client(key)
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="beta/gpt-4o-mini", messages=ASK)
    for _ in range(3):
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=ASK)
        assert raw.headers["x-proxy-target-id"] == str(CHANNELS["alpha"])
