"""Each API through the proxy with its own SDK, plain and streamed, with a proxy key and
with the master token: the answer arrives whole, names the channel used, and never
carries the channel's key."""

import httpx
import pytest

from conftest import (
    CHANNEL_KEY,
    CHANNELS,
    KEY,
    MASTER,
    URL,
    anthropic_client,
    genai_client,
    openai_client,
)

KEYS = pytest.mark.parametrize("key", [KEY, MASTER], ids=["proxy-key", "master-token"])
CHANNEL_IDS = {str(i) for i in CHANNELS.values()}


def check_headers(headers):
    assert headers.get("x-proxy-target-id") in CHANNEL_IDS, dict(headers)
    assert headers.get("x-proxy-upstream-model"), dict(headers)
    assert CHANNEL_KEY not in str(dict(headers))


@KEYS
def test_chat_completions_plain_and_streamed(key):
    client = openai_client(key)
    messages = [{"role": "user", "content": "Say hello"}]
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=messages)
    check_headers(raw.headers)
    assert CHANNEL_KEY not in raw.http_response.text
    reply = raw.parse()
    assert reply.choices[0].message.content == "Hello from gpt-4o-mini"
    assert reply.usage.prompt_tokens > 0

    raw = client.chat.completions.with_raw_response.create(
        model="alpha/gpt-4o-mini",
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},
    )
    assert raw.headers["x-proxy-target-id"] == str(CHANNELS["alpha"])
    assert raw.headers.get("x-accel-buffering") == "no"
    text, usage = "", None
    for chunk in raw.parse():
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage:
            usage = chunk.usage
    assert text == "Hello from gpt-4o-mini"
    assert usage is not None and usage.completion_tokens > 0


@KEYS
def test_responses_plain_and_streamed(key):
    client = openai_client(key)
    raw = client.responses.with_raw_response.create(model="gpt-4o-mini", input="Say hello")
    check_headers(raw.headers)
    reply = raw.parse()
    assert reply.output_text == "Hello from gpt-4o-mini"
    assert reply.usage.output_tokens > 0

    kinds, text, completed = [], "", None
    for event in client.responses.create(model="beta/gpt-4o-mini", input="Say hello", stream=True):
        kinds.append(event.type)
        if event.type == "response.output_text.delta":
            text += event.delta
        if event.type == "response.completed":
            completed = event.response
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed", kinds
    assert text == "Hello from gpt-4o-mini"
    assert completed.usage.output_tokens > 0


@KEYS
def test_anthropic_messages_plain_and_streamed(key):
    client = anthropic_client(key)
    messages = [{"role": "user", "content": "Say hello"}]
    raw = client.messages.with_raw_response.create(
        model="claude-3-5-haiku", max_tokens=64, messages=messages
    )
    check_headers(raw.headers)
    reply = raw.parse()
    assert reply.content[0].text == "Hello from claude-3-5-haiku"
    assert reply.usage.input_tokens > 0

    with client.messages.stream(
        model="alpha/claude-3-5-haiku", max_tokens=64, messages=messages
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello from claude-3-5-haiku"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


@KEYS
@pytest.mark.parametrize("version", [None, "v1beta"], ids=["sdk-default-path", "v1beta-path"])
def test_gemini_generate_plain_and_streamed(key, version):
    client = genai_client(key, version)
    reply = client.models.generate_content(model="gemini-2.0-flash", contents="Say hello")
    assert reply.text == "Hello from gemini-2.0-flash"
    assert reply.usage_metadata.prompt_token_count > 0

    chunks = list(
        client.models.generate_content_stream(model="beta/gemini-2.0-flash", contents="Say hello")
    )
    assert "".join(c.text or "" for c in chunks) == "Hello from gemini-2.0-flash"
    assert chunks[-1].usage_metadata.candidates_token_count > 0


@KEYS
def test_model_lists_for_openai_and_gemini(key):
    ids = {m.id for m in openai_client(key).models.list()}
    for expected in ["gpt-4o-mini", "alpha/gpt-4o-mini", "beta/claude-3-5-haiku", "gamma/gpt-refused"]:
        assert expected in ids, ids
    for version in [None, "v1beta"]:
        gemini = genai_client(key, version)  # kept: the pager uses its connection
        names = [m.name for m in gemini.models.list()]
        assert any(n.endswith("gemini-2.0-flash") for n in names), (version, names)


@KEYS
def test_embeddings_bare_and_on_a_named_channel(key):
    client = openai_client(key)
    raw = client.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input=["one", "two"]
    )
    check_headers(raw.headers)
    reply = raw.parse()
    assert [len(d.embedding) for d in reply.data] == [8, 8]
    named = client.embeddings.create(model="beta/text-embedding-3-small", input="one")
    assert named.data[0].embedding == pytest.approx(reply.data[0].embedding)


def test_the_key_works_in_every_place_an_sdk_puts_it():
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}]}
    placements = [
        ({"Authorization": f"Bearer {KEY}"}, {}),
        ({"x-api-key": KEY}, {}),
        ({"x-goog-api-key": KEY}, {}),
        ({}, {"key": KEY}),
    ]
    for headers, params in placements:
        answer = httpx.post(f"{URL}/v1/chat/completions", json=body, headers=headers, params=params)
        assert answer.status_code == 200, (headers, params, answer.text)
    refused = httpx.post(f"{URL}/v1/chat/completions", json=body, headers={"x-api-key": "sk-wrong"})
    assert refused.status_code == 401, refused.text


def test_an_upstream_error_passes_through_without_the_channel_key(relays):
    # Relays echo the key they were given in a 401, as real ones do.
    relays["a"].fail("gpt-echo", "status", 401)
    try:
        answer = httpx.post(
            f"{URL}/v1/chat/completions",
            json={"model": "alpha/gpt-echo", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {KEY}"},
        )
        assert relays["a"].requests("gpt-echo")[-1]["status"] == 401
        assert answer.status_code == 401, answer.text
        assert "Incorrect API key provided" in answer.text
        assert CHANNEL_KEY not in answer.text
        assert CHANNEL_KEY not in str(dict(answer.headers))
    finally:
        relays["a"].heal("gpt-echo")
