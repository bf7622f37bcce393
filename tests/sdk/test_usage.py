"""Usage as the operator reads it: rows for exactly the requests a key made, with the
tokens the upstream reported, estimates flagged for streamed chat without usage, and the
key's last use."""

import time

from conftest import CHANNELS, eventually, openai_client

ASK = [{"role": "user", "content": "Say hello"}]


def totals(admin, key_id):
    answer = admin.get("/api/proxy/usage", params={"key_id": key_id, "since": time.time() - 3600})
    assert answer.status_code == 200, answer.text
    return answer.json()["totals"]


def test_usage_rows_match_the_requests_made(admin, make_key, relays):
    key_id, key = make_key(name="counted")
    client = openai_client(key)
    start = time.time()
    client.chat.completions.create(model="gpt-usage", messages=ASK)
    client.chat.completions.create(model="alpha/gpt-usage", messages=ASK)
    list(
        client.chat.completions.create(
            model="gpt-usage", messages=ASK, stream=True, stream_options={"include_usage": True}
        )
    )
    client.responses.create(model="gpt-usage", input="Say hello")

    # gpt-usage is on relay A only: its records are exactly these requests.
    records = [r for r in relays["a"].requests("gpt-usage") if r["arrived_at"] >= start]
    assert len(records) == 4
    reported_in = sum(r["usage"]["input_tokens"] for r in records)
    reported_out = sum(r["usage"]["output_tokens"] for r in records)
    counted = eventually("four rows", lambda: (t := totals(admin, key_id))["requests"] == 4 and t)
    assert counted["input_tokens"] == reported_in, (counted, reported_in)
    assert counted["output_tokens"] == reported_out, (counted, reported_out)
    assert counted["estimated_requests"] == 0
    assert counted["errors"] == 0

    # A streamed chat that did not ask for usage: estimated, and flagged.
    list(client.chat.completions.create(model="gpt-usage", messages=ASK, stream=True))
    counted = eventually("five rows", lambda: (t := totals(admin, key_id))["requests"] == 5 and t)
    assert counted["estimated_requests"] == 1
    assert counted["output_tokens"] > reported_out

    item = admin.get(f"/api/proxy/keys/{key_id}").json()["item"]
    assert item["last_used_target_id"] == CHANNELS["alpha"]
    assert item["last_used_at"] >= start
