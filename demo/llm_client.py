#!/usr/bin/env python3
"""A small LLM API client for the stub (demo/llm_stub.py): sends chat requests carrying an API key
over one HTTPS keep-alive connection and prints the tool calls it was asked to make, one JSON
line per request. Meant to run under `proctor run --capture-tls` so a test can check the
captured plaintext (redacted) and the llm_request / llm_response events.

Usage:
  llm_client.py --port N [--host 127.0.0.1] [--api openai|anthropic|responses] [--stream]
                [--count N] [--cafile CERT | --insecure] [--key SECRET] [--gzip]
Python 3.11 standard library only (http.client over ssl, i.e. OpenSSL's SSL_write/SSL_read_ex).
"""

import argparse
import http.client
import json
import ssl
import sys

OPENAI_KEY = "sk-proj-stubSECRETstubSECRETstubSECRET0123456789"
ANTHROPIC_KEY = "sk-ant-api03-stubSECRETstubSECRETstubSECRET-0123456789"

TOOLS_OPENAI = [{"type": "function", "function": {
    "name": "run_shell", "description": "Run a shell command",
    "parameters": {"type": "object", "properties": {"command": {"type": "string"}}}}}]
TOOLS_ANTHROPIC = [{"name": "run_shell", "description": "Run a shell command",
                    "input_schema": {"type": "object",
                                     "properties": {"command": {"type": "string"}}}}]
TOOLS_RESPONSES = [{"type": "function", "name": "run_shell",
                    "parameters": {"type": "object", "properties": {"command": {"type": "string"}}}}]
MESSAGES = [{"role": "user", "content": "Summarise the README of this repository."}]


def sse_events(resp):
    """Yields the data of each server-sent event of a streamed response."""
    data = []
    for raw in resp:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if data:
                yield "\n".join(data)
            data = []
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
    if data:
        yield "\n".join(data)


def tool_calls(api, body, stream):
    calls = {}
    if not stream:
        v = json.loads(body)
        if api == "openai":
            for c in v["choices"][0]["message"].get("tool_calls") or []:
                calls[len(calls)] = [c["function"]["name"], c["function"]["arguments"]]
        elif api == "anthropic":
            for b in v["content"]:
                if b["type"] == "tool_use":
                    calls[len(calls)] = [b["name"], json.dumps(b["input"])]
        else:
            for item in v["output"]:
                if item["type"] == "function_call":
                    calls[len(calls)] = [item["name"], item["arguments"]]
        return list(calls.values())
    for data in body:
        if data == "[DONE]":
            break
        v = json.loads(data)
        if api == "openai":
            for c in v["choices"][0]["delta"].get("tool_calls") or []:
                entry = calls.setdefault(c["index"], ["", ""])
                f = c.get("function") or {}
                entry[0] = entry[0] or f.get("name") or ""
                entry[1] += f.get("arguments") or ""
        elif v["type"] == "content_block_start" and v["content_block"]["type"] == "tool_use":
            calls[v["index"]] = [v["content_block"]["name"], ""]
        elif v["type"] == "content_block_delta" and v["delta"]["type"] == "input_json_delta":
            calls[v["index"]][1] += v["delta"]["partial_json"]
    return [calls[k] for k in sorted(calls)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--api", choices=["openai", "anthropic", "responses"], default="openai")
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--count", type=int, default=1, help="requests on one keep-alive connection")
    ap.add_argument("--cafile", help="verify the server against this certificate")
    ap.add_argument("--insecure", action="store_true", help="do not verify (loopback only)")
    ap.add_argument("--key", help="the API key to send (a fake one by default)")
    ap.add_argument("--gzip", action="store_true", help="send Accept-Encoding: gzip")
    args = ap.parse_args()

    if args.cafile:
        ctx = ssl.create_default_context(cafile=args.cafile)
    elif args.insecure:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ap.error("give --cafile CERT (the stub prints its path) or --insecure")
    conn = http.client.HTTPSConnection(args.host, args.port, context=ctx, timeout=30)
    for i in range(args.count):
        headers = {"Content-Type": "application/json"}
        if args.gzip:
            headers["Accept-Encoding"] = "gzip"
        if args.api == "anthropic":
            path = "/v1/messages"
            headers["x-api-key"] = args.key or ANTHROPIC_KEY
            headers["anthropic-version"] = "2023-06-01"
            body = {"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": MESSAGES,
                    "tools": TOOLS_ANTHROPIC}
        elif args.api == "responses":
            path = "/v1/responses"
            headers["Authorization"] = f"Bearer {args.key or OPENAI_KEY}"
            body = {"model": "gpt-4.1", "input": MESSAGES, "tools": TOOLS_RESPONSES}
        else:
            path = "/v1/chat/completions"
            headers["Authorization"] = f"Bearer {args.key or OPENAI_KEY}"
            body = {"model": "gpt-4o", "messages": MESSAGES, "tools": TOOLS_OPENAI}
        if args.stream and args.api != "responses":
            body["stream"] = True
        conn.request("POST", path, body=json.dumps(body), headers=headers)
        resp = conn.getresponse()
        if resp.status != 200:
            print(f"llm_client: HTTP {resp.status}: {resp.read()[:200]!r}", file=sys.stderr)
            return 1
        stream = resp.getheader("Content-Type", "").startswith("text/event-stream")
        if stream:
            payload = sse_events(resp)
        else:
            payload = resp.read()
            if resp.getheader("Content-Encoding") == "gzip":
                import gzip
                payload = gzip.decompress(payload)
        calls = tool_calls(args.api, payload, stream)
        if stream:
            resp.read()  # drain to the end of the chunked body, for keep-alive
        print(json.dumps({"request": i, "api": args.api, "stream": stream, "tool_calls": calls}),
              flush=True)
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
