"""Routing under failure and streams as they flow: failover from a failing channel to a
healthy one for the same bare model, no retry once a byte reached the client, the
breaker that trips and recovers, streams passed on unbuffered, and a client that hangs
up cancelling its upstream request."""

import time

import openai
import pytest

from conftest import (
    CHANNELS,
    KEY,
    anthropic_client,
    eventually,
    genai_client,
    openai_client,
    record_count,
)

ASK = [{"role": "user", "content": "Say hello"}]


def chat_raw(model):
    return openai_client(KEY).chat.completions.with_raw_response.create(model=model, messages=ASK)


@pytest.mark.parametrize("failure", [("status", 500), ("status", 429)], ids=["5xx", "429"])
def test_a_failing_channel_fails_over_to_a_healthy_one(relays, failure):
    kind, status = failure
    relays["a"].fail("gpt-failover", kind, status)
    try:
        before_b = len(relays["b"].requests("gpt-failover"))
        for _ in range(4):
            raw = chat_raw("gpt-failover")
            assert raw.headers["x-proxy-target-id"] == str(CHANNELS["beta"])
            assert raw.parse().choices[0].message.content == "Hello from gpt-failover"
        assert len(relays["b"].requests("gpt-failover")) == before_b + 4
    finally:
        relays["a"].heal("gpt-failover")


def test_a_channel_that_refuses_connections_fails_over(relays):
    relays["c"].listen(False)
    try:
        for _ in range(3):
            raw = chat_raw("gpt-refused")
            assert raw.headers["x-proxy-target-id"] == str(CHANNELS["beta"])
    finally:
        relays["c"].listen(True)


def test_no_retry_once_the_first_byte_reached_the_client(relays):
    for relay in ("a", "b"):
        relays[relay].fail("gpt-firstbyte", "error_after_first_byte")
    try:
        before = record_count(relays, "gpt-firstbyte")
        stream = openai_client(KEY).chat.completions.create(
            model="gpt-firstbyte", messages=ASK, stream=True
        )
        text = ""
        with pytest.raises(Exception):
            for chunk in stream:
                if chunk.choices:
                    text += chunk.choices[0].delta.content or ""
        assert text, "the first content never reached the client"
        assert text != "Hello from gpt-firstbyte"
        time.sleep(0.5)
        assert record_count(relays, "gpt-firstbyte") == before + 1, "retried after the first byte"
    finally:
        for relay in ("a", "b"):
            relays[relay].heal("gpt-firstbyte")


def test_the_breaker_trips_and_recovers(relays, admin):
    relay = relays["a"]
    relay.fail("gpt-breaker", "status", 500)
    refused = None
    try:
        for _ in range(15):
            before = len(relay.requests("gpt-breaker"))
            try:
                chat_raw("gpt-breaker")
                raise AssertionError("a failing channel answered")
            except openai.APIStatusError as e:
                if len(relay.requests("gpt-breaker")) == before:
                    refused = e
                    break
                assert e.status_code == 500, e
        assert refused is not None, "the breaker never tripped"
        assert refused.status_code == 503, refused
        breakers = admin.get("/api/proxy/breakers").json()["items"]
        assert any(b.get("model") == "gpt-breaker" for b in breakers), breakers
    finally:
        relay.heal("gpt-breaker")
    # After the cooldown (1 s in these tests) one trial goes through and closes it.
    time.sleep(1.3)
    assert chat_raw("gpt-breaker").parse().choices[0].message.content == "Hello from gpt-breaker"
    for _ in range(3):
        chat_raw("gpt-breaker")
    assert not any(
        b.get("model") == "gpt-breaker" and b.get("state") != "closed"
        for b in admin.get("/api/proxy/breakers").json()["items"]
    )


def _chat_stream(model):
    for chunk in openai_client(KEY).chat.completions.create(model=model, messages=ASK, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            yield


def _anthropic_stream(model):
    with anthropic_client(KEY).messages.stream(model=model, max_tokens=64, messages=ASK) as s:
        for _ in s.text_stream:
            yield


def _gemini_stream(model):
    client = genai_client(KEY)  # kept: the stream uses its connection
    for chunk in client.models.generate_content_stream(model=model, contents="hi"):
        if chunk.text:
            yield


def _responses_stream(model):
    for event in openai_client(KEY).responses.create(model=model, input="hi", stream=True):
        if event.type == "response.output_text.delta":
            yield


@pytest.mark.parametrize(
    "model,stream",
    [
        ("gpt-spaced", _chat_stream),
        ("gpt-spaced", _responses_stream),
        ("claude-spaced", _anthropic_stream),
        ("gemini-spaced", _gemini_stream),
    ],
    ids=["chat", "responses", "messages", "gemini"],
)
def test_a_stream_is_not_buffered(relays, model, stream):
    for relay in ("a", "b"):
        relays[relay].space_events(model, 300)
    seen_first = None
    for _ in stream(model):
        if seen_first is None:
            seen_first = time.time()
    record = max(
        (r for relay in ("a", "b") for r in relays[relay].requests(model)),
        key=lambda r: r["arrived_at"],
    )
    sent = record["events_sent_at"]
    assert len(sent) >= 4, sent
    # The client saw content well before the relay had even sent its last event.
    assert seen_first < sent[-1] - 0.5, (seen_first, sent)


def _leave_chat(model):
    stream = openai_client(KEY).chat.completions.create(model=model, messages=ASK, stream=True)
    next(iter(stream))
    stream.close()


def _leave_responses(model):
    stream = openai_client(KEY).responses.create(model=model, input="hi", stream=True)
    next(iter(stream))
    stream.close()


def _leave_messages(model):
    with anthropic_client(KEY).messages.stream(model=model, max_tokens=64, messages=ASK) as s:
        next(iter(s))


@pytest.mark.parametrize(
    "model,leave",
    [("gpt-leaving", _leave_chat), ("gpt-leaving", _leave_responses), ("claude-leaving", _leave_messages)],
    ids=["chat", "responses", "messages"],
)
def test_a_client_that_hangs_up_cancels_the_upstream_request(relays, model, leave):
    for relay in ("a", "b"):
        relays[relay].space_events(model, 300)
    started = time.time()
    leave(model)
    hung_up_at = time.time()

    def hung_up():
        records = [r for relay in ("a", "b") for r in relays[relay].requests(model)]
        return [r for r in records if r["arrived_at"] >= started and r["outcome"] == "hung_up"]

    (record,) = eventually("the relay saw the hang-up", hung_up, seconds=3)
    # At once: well before the stream would have ended on its own.
    assert record["ended_at"] - hung_up_at < 1.0, record
    assert len(record["events_sent_at"]) < 6, record
