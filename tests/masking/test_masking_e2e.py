"""Through a real `relay run`: a server that writes card data in exact bytes; none reaches the client or disk."""

from __future__ import annotations

from pathlib import Path

from tests.support.processes import PY, RELAY, SERVERS, RawClient, relay_env

RAW = [PY, str(SERVERS / "raw_stdio_server.py")]
PANS = ["4111111111111111", "5555555555554444", "378282246310005"]


def relay(tmp_path: Path) -> RawClient:
    return RawClient([*RELAY, "run", "--", *RAW], env=relay_env(tmp_path))


def transcripts(tmp_path: Path) -> str:
    return "".join(p.read_text() for p in (tmp_path / "state" / "relay" / "transcripts").glob("*.jsonl"))


def test_exact_bytes_with_card_data_are_masked_on_the_way_to_the_client(tmp_path: Path) -> None:
    answer = (b'{"jsonrpc":"2.0","id":{{ID}},"result":{"content":[{"type":"text","text":'
              b'"Visa 4111 1111 1111 1111, MC 5555-5555-5555-4444, Amex 378282246310005, CVV: 123"}],'
              b'"structuredContent":{"pan":4111111111111111,"cvv":"123","track2":";4111111111111111=29121010000012300000?"}}}\n')
    note = b'{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"card 4111111111111111"}}\n'
    with relay(tmp_path) as c:
        c.initialize()
        resp = c.request("tools/call", {"name": "reply_bytes", "arguments": {"hex": (note + answer).hex()}})
        text = resp["result"]["content"][0]["text"]
        assert "**** **** **** 1111" in text and "****-****-****-4444" in text and "***********0005" in text
        assert "CVV: [CVV REDACTED]" in text
        assert resp["result"]["structuredContent"]["pan"] == "************1111"
        assert "123" not in resp["result"]["structuredContent"]["cvv"]
        assert "TRACK DATA REDACTED" in resp["result"]["structuredContent"]["track2"]
        assert c.other[0]["params"]["data"] == "card ************1111"
        seen = str(resp) + str(c.other)
        assert c.close() == 0
    for pan in PANS:
        assert pan not in seen
    on_disk = transcripts(tmp_path)
    assert on_disk and all(pan not in on_disk for pan in PANS)
    assert "4111 1111 1111 1111" not in on_disk


def test_the_agent_may_send_a_card_but_the_transcript_never_keeps_it(tmp_path: Path) -> None:
    with relay(tmp_path) as c:
        c.initialize()
        resp = c.request("tools/call", {"name": "echo", "arguments": {"text": "look up 4111111111111111"}})
        # The server got the card as sent (echo proves it) and the agent gets it back masked.
        assert resp["result"]["content"][0]["text"] == "look up ************1111"
        assert c.close() == 0
    assert "4111111111111111" not in transcripts(tmp_path)
