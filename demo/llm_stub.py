#!/usr/bin/env python3
"""A stub LLM API over HTTPS on loopback, for tests and demos of TLS capture.

It answers, with HTTP/1.1 keep-alive:
  POST .../chat/completions   OpenAI chat completions, plain JSON or "stream": true (SSE)
  POST .../v1/messages        Anthropic messages, plain JSON or "stream": true (SSE)
  POST .../v1/responses       OpenAI responses, plain JSON only
with a canned assistant turn that asks for one tool call: the first tool the request offers (or
--tool), with arguments {"command": "cat ~/.aws/credentials"}. Streamed answers use chunked
transfer coding, one SSE event per chunk, the tool arguments split over several events.

Usage:
  llm_stub.py [--port 0] [--cert C --key K] [--record DIR] [--gzip]
The first line on stdout is the port; the second is the certificate path (self-signed for
localhost and 127.0.0.1, made with the openssl CLI in a temporary directory unless --cert is
given). --record DIR writes every connection's raw plaintext to DIR/conn-N.send (what the client
sent) and DIR/conn-N.recv (what it received). --gzip compresses plain JSON answers when the
client accepts gzip. Python 3.11 standard library only.
"""

import argparse
import gzip
import http.server
import itertools
import json
import os
import shutil
import signal
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading

TOOL_ARGS = {"command": "cat ~/.aws/credentials"}
TEXT = "I will look at the credentials file."


def make_cert(directory):
    cert = os.path.join(directory, "stub-cert.pem")
    key = os.path.join(directory, "stub-key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


class Tee:
    """Wraps a file object, appending what passes through to a record file."""

    def __init__(self, inner, record):
        self.inner = inner
        self.record = record

    def _log(self, data):
        if data:
            self.record.write(data)
            self.record.flush()
        return data

    def readline(self, *a):
        return self._log(self.inner.readline(*a))

    def read(self, *a):
        return self._log(self.inner.read(*a))

    def write(self, data):
        self._log(bytes(data))
        return self.inner.write(data)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def tool_name(req, api, default):
    for t in req.get("tools") or []:
        if not isinstance(t, dict):
            continue
        if api == "openai-chat" and isinstance(t.get("function"), dict) and t["function"].get("name"):
            return t["function"]["name"]
        if t.get("name"):
            return t["name"]
    return default


def api_of(path):
    path = path.split("?", 1)[0].rstrip("/")
    if path.endswith("/chat/completions"):
        return "openai-chat"
    if path.endswith("/v1/messages"):
        return "anthropic-messages"
    if path.endswith("/v1/responses"):
        return "openai-responses"
    return None


def openai_chat(model, tool):
    return {
        "id": "chatcmpl-stub1", "object": "chat.completion", "created": 1700000000, "model": model,
        "choices": [{
            "index": 0, "finish_reason": "tool_calls",
            "message": {"role": "assistant", "content": TEXT, "tool_calls": [{
                "id": "call_stub1", "type": "function",
                "function": {"name": tool, "arguments": json.dumps(TOOL_ARGS)}}]},
        }],
        "usage": {"prompt_tokens": 20, "completion_tokens": 12, "total_tokens": 32},
    }


def openai_chat_events(model, tool):
    args = json.dumps(TOOL_ARGS)
    base = {"id": "chatcmpl-stub1", "object": "chat.completion.chunk", "created": 1700000000,
            "model": model}
    deltas = [{"role": "assistant", "content": TEXT[:10]}, {"content": TEXT[10:]},
              {"tool_calls": [{"index": 0, "id": "call_stub1", "type": "function",
                               "function": {"name": tool, "arguments": ""}}]}]
    for i in range(0, len(args), 9):
        deltas.append({"tool_calls": [{"index": 0, "function": {"arguments": args[i:i + 9]}}]})
    for d in deltas:
        yield None, dict(base, choices=[{"index": 0, "delta": d, "finish_reason": None}])
    yield None, dict(base, choices=[{"index": 0, "delta": {}, "finish_reason": "tool_calls"}])
    yield None, "[DONE]"


def anthropic(model, tool):
    return {
        "id": "msg_stub1", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": TEXT},
                    {"type": "tool_use", "id": "toolu_stub1", "name": tool, "input": TOOL_ARGS}],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 20, "output_tokens": 12},
    }


def anthropic_events(model, tool):
    args = json.dumps(TOOL_ARGS)
    yield "message_start", {"type": "message_start", "message": {
        "id": "msg_stub1", "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 20, "output_tokens": 1}}}
    yield "content_block_start", {"type": "content_block_start", "index": 0,
                                  "content_block": {"type": "text", "text": ""}}
    yield "ping", {"type": "ping"}
    yield "content_block_delta", {"type": "content_block_delta", "index": 0,
                                  "delta": {"type": "text_delta", "text": TEXT}}
    yield "content_block_stop", {"type": "content_block_stop", "index": 0}
    yield "content_block_start", {"type": "content_block_start", "index": 1, "content_block": {
        "type": "tool_use", "id": "toolu_stub1", "name": tool, "input": {}}}
    for i in range(0, len(args), 9):
        yield "content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {
            "type": "input_json_delta", "partial_json": args[i:i + 9]}}
    yield "content_block_stop", {"type": "content_block_stop", "index": 1}
    yield "message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use",
                                                               "stop_sequence": None},
                            "usage": {"output_tokens": 12}}
    yield "message_stop", {"type": "message_stop"}


def openai_responses(model, tool):
    return {
        "id": "resp_stub1", "object": "response", "status": "completed", "model": model,
        "output": [
            {"type": "message", "id": "msg_1", "role": "assistant",
             "content": [{"type": "output_text", "text": TEXT}]},
            {"type": "function_call", "id": "fc_1", "call_id": "call_stub1", "name": tool,
             "arguments": json.dumps(TOOL_ARGS)},
        ],
    }


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "llm-stub/1"

    def setup(self):
        super().setup()
        rec = self.server.record_dir
        if rec:
            n = next(self.server.conn_ids)
            self.rfile = Tee(self.rfile, open(os.path.join(rec, f"conn-{n}.send"), "wb"))
            self.wfile = Tee(self.wfile, open(os.path.join(rec, f"conn-{n}.recv"), "wb"))

    def finish(self):
        super().finish()
        for f in (self.rfile, self.wfile):
            if isinstance(f, Tee):
                f.record.close()

    def log_message(self, fmt, *args):
        sys.stderr.write("llm_stub: " + (fmt % args) + "\n")

    def send_json(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if self.server.gzip and "gzip" in self.headers.get("Accept-Encoding", ""):
            body = gzip.compress(body)
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_events(self, events):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for name, data in events:
            text = data if isinstance(data, str) else json.dumps(data)
            ev = (f"event: {name}\n" if name else "") + f"data: {text}\n\n"
            raw = ev.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(raw), raw))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def do_GET(self):
        self.send_json(404, {"error": {"message": "not found"}})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        api = api_of(self.path)
        try:
            req = json.loads(raw or b"{}")
        except ValueError:
            self.send_json(400, {"error": {"message": "invalid json"}})
            return
        if api is None or not isinstance(req, dict):
            self.send_json(404, {"error": {"message": "unknown endpoint"}})
            return
        model = str(req.get("model") or "stub-model")
        tool = tool_name(req, api, self.server.tool)
        stream = req.get("stream") is True
        if api == "openai-chat":
            if stream:
                self.send_events(openai_chat_events(model, tool))
            else:
                self.send_json(200, openai_chat(model, tool))
        elif api == "anthropic-messages":
            if stream:
                self.send_events(anthropic_events(model, tool))
            else:
                self.send_json(200, anthropic(model, tool))
        else:
            self.send_json(200, openai_responses(model, tool))


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--record", metavar="DIR")
    ap.add_argument("--tool", default="run_shell", help="tool asked for when the request offers none")
    ap.add_argument("--gzip", action="store_true")
    args = ap.parse_args()

    tmp = None
    if args.cert and args.key:
        cert, key = args.cert, args.key
    else:
        tmp = tempfile.mkdtemp(prefix="llm-stub-")
        cert, key = make_cert(tmp)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv = Server((args.host, args.port), Handler)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.record_dir = args.record
    srv.conn_ids = itertools.count(1)
    srv.tool = args.tool
    srv.gzip = args.gzip
    if args.record:
        os.makedirs(args.record, exist_ok=True)
    # SIGTERM ends like Ctrl-C, so the temporary certificate directory is removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(srv.server_address[1], flush=True)
    print(cert, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
