"""A test double for a model endpoint: a small OpenAI-compatible streaming server.

Why a double: the service tests need endpoints that fail, hang and emit
hostile markup on demand, which a real engine cannot be told to do; the real
vLLM end-to-end run is separate. This is the only double in the arena tests,
and it stands in for the *upstream model*, never for the service under test.

Behaviour by requested model name:
  fail*  -> HTTP 500            hang* -> headers, then silence
  html*  -> markup and script in the answer
  other  -> "<model> heard N messages: <last prompt>" in markdown, word by word
Run: python model_double.py PORT
"""

from __future__ import annotations

import asyncio
import json
import sys

from aiohttp import web

HOSTILE = (
    "**Bold** and a list:\n\n- one\n- two\n\n"
    '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
    "[click](javascript:window.pwned=3)"
)


def chunk(model: str, text: str) -> bytes:
    payload = {
        "object": "chat.completion.chunk",
        "model": model,
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
    }
    return f"data: {json.dumps(payload)}\n\n".encode()


async def completions(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    model = body["model"]
    messages = body["messages"]
    if model.startswith("fail"):
        return web.json_response({"error": "boom"}, status=500)
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    if model.startswith("hang"):
        await asyncio.sleep(3600)
    if model.startswith("html"):
        words = [HOSTILE]
    else:
        last = messages[-1]["content"]
        words = f"## {model}\n\n**{model}** heard {len(messages)} messages: {last}".split(" ")
    delay = float(request.query.get("delay", "0"))
    for n, word in enumerate(words):
        await response.write(chunk(model, word if n == 0 else " " + word))
        if delay:
            await asyncio.sleep(delay)
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


def main() -> None:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)


if __name__ == "__main__":
    main()
