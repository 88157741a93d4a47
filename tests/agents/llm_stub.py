#!/usr/bin/env python3
"""A scripted LLM API for driving the real agent CLIs in tests: it plays the model.

It speaks four wire formats, each plain JSON or streamed as server-sent events ("stream": true,
or Gemini's streaming method; chunked transfer coding, one event per chunk), over HTTP/1.1 or
HTTPS with a per-run CA:
  POST .../v1/messages            Anthropic Messages (Claude Code)
  POST .../responses              OpenAI Responses (Codex)
  POST .../chat/completions       OpenAI Chat Completions (pi, most OpenAI-compatible agents)
  POST .../models/M:generateContent, :streamGenerateContent?alt=sse
                                  Gemini API (Gemini CLI): function calls and responses

A script is a list of shell commands. The stub answers each request that offers a shell tool with
a call of that tool for the next command; which command is next is counted from the tool results
the request carries back, so the stub keeps no per-conversation state and an agent's side requests
(titles, summaries: no tools offered) get a short text answer without consuming a step (a side request that asks for JSON
with a schema, as Gemini CLI's "who speaks next" check does, gets the smallest instance of the
schema: first enum values, empty strings). When every step has a result it answers with a final
text, which ends a headless session.

A step may carry "not_before_s": the stub holds its answer until that many seconds have passed
since the first request that offered tools. A step marked "gate" is also held until the server's
`gate` callable returns true (session.py opens it when proctor records the end of its baseline
window); whether the gate was already open when the step was asked for (the steps before it ran
after the window) is kept in `script.gate_open_on_arrival`.

Used as a module by session.py; run alone (`llm_stub.py --script FILE [--tls DIR]`) it serves
until killed and prints its base URL. Python 3 standard library plus the openssl CLI.
"""

import argparse
import http.server
import itertools
import json
import os
import socketserver
import ssl
import subprocess
import sys
import threading
import time

SHELL_TOOLS = ("bash", "shell", "shell_command", "exec_command", "local_shell", "exec",
               "run_shell_command")
FINAL_TEXT = "All done."
SIDE_TEXT = "OK"


def make_ca(directory, hosts=("localhost", "127.0.0.1")):
    """A CA (written to DIR/ca.pem) and a leaf for `hosts` signed by it; returns
    (ca_path, leaf_cert_path, leaf_key_path). The CA key never leaves DIR, which the caller
    makes private."""

    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)

    p = lambda name: os.path.join(directory, name)  # noqa: E731
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", p("ca-key.pem"), "-out", p("ca.pem"), "-days", "2",
            "-subj", "/CN=proctor test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", *ec, "-keyout", p("leaf-key.pem"), "-out", p("leaf.csr"),
            "-subj", "/CN=localhost")
    san = ",".join(("IP:" if h[0].isdigit() else "DNS:") + h for h in hosts)
    with open(p("leaf.ext"), "w") as f:
        f.write(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", p("leaf.csr"), "-CA", p("ca.pem"), "-CAkey", p("ca-key.pem"),
            "-CAcreateserial", "-out", p("leaf.pem"), "-days", "2", "-extfile", p("leaf.ext"))
    return p("ca.pem"), p("leaf.pem"), p("leaf-key.pem")


# ---- reading a request -------------------------------------------------------------------------

def api_of(path):
    if path.endswith("/messages"):
        return "anthropic"
    if path.endswith("/responses"):
        return "responses"
    if path.endswith("/chat/completions"):
        return "chat"
    if path.endswith((":generateContent", ":streamGenerateContent")):
        return "gemini"
    return None


def is_stream(req, api, path):
    """Streamed: the body says so (Anthropic, OpenAI), or Gemini's streaming method."""
    return bool(req.get("stream")) or (api == "gemini" and path.endswith(":streamGenerateContent"))


def gemini_model(path):
    """The model a Gemini API path names: .../models/NAME:method."""
    return path.rsplit("/", 1)[-1].split(":")[0]


def tool_defs(req, api):
    """(name, JSON schema) of each tool the request offers."""
    out = []
    for t in req.get("tools") or []:
        if not isinstance(t, dict):
            continue
        if api == "chat" and isinstance(t.get("function"), dict):
            f = t["function"]
            out.append((f.get("name", ""), f.get("parameters") or {}))
        elif api == "gemini":
            for f in t.get("functionDeclarations") or []:
                if isinstance(f, dict):
                    out.append((f.get("name", ""),
                                f.get("parametersJsonSchema") or f.get("parameters") or {}))
        elif t.get("type") == "local_shell":
            out.append(("local_shell", {}))
        else:
            out.append((t.get("name", ""), t.get("input_schema") or t.get("parameters") or {}))
    return out


def results_count(req, api):
    """How many tool results the conversation carries: the index of the next step."""
    n = 0
    if api == "anthropic":
        for m in req.get("messages") or []:
            content = m.get("content") if isinstance(m, dict) else None
            if isinstance(content, list):
                n += sum(1 for c in content if isinstance(c, dict) and c.get("type") == "tool_result")
    elif api == "responses":
        items = req.get("input")
        if isinstance(items, list):
            n = sum(1 for i in items if isinstance(i, dict)
                    and i.get("type") in ("function_call_output", "custom_tool_call_output",
                                          "local_shell_call_output"))
    elif api == "gemini":
        for c in req.get("contents") or []:
            parts = c.get("parts") if isinstance(c, dict) else None
            if isinstance(parts, list):
                n += sum(1 for p in parts if isinstance(p, dict) and "functionResponse" in p)
    else:
        n = sum(1 for m in req.get("messages") or [] if isinstance(m, dict) and m.get("role") == "tool")
    return n


def json_schema_wanted(req, api):
    """The JSON schema a side request asks its answer to follow (Gemini's generationConfig
    responseJsonSchema or responseSchema), or None."""
    if api != "gemini":
        return None
    cfg = req.get("generationConfig") or {}
    if cfg.get("responseMimeType") != "application/json":
        return None
    schema = cfg.get("responseJsonSchema") or cfg.get("responseSchema")
    return schema if isinstance(schema, dict) else {}


def schema_instance(schema):
    """The smallest value of a JSON schema: its first enum value, an object of its properties,
    an empty string or list, zero, false. Gemini's schema types are upper case."""
    if not isinstance(schema, dict):
        return None
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if str(k).lower() != "null"), None)
    kind = str(kind or "object").lower()
    if kind == "object":
        props = schema.get("properties") or {}
        return {k: schema_instance(v) for k, v in props.items()}
    return {"array": [], "string": "", "number": 0, "integer": 0,
            "boolean": False}.get(kind)


def shell_call(tools, command):
    """(tool name, arguments) calling the offered shell tool with `command`, shaped by its
    schema: an argv array (Codex's `shell`), a `cmd` string (`exec_command`) or a `command`
    string (Claude Code's Bash, pi's bash)."""
    by_name = {name.lower(): (name, schema) for name, schema in tools}
    for wanted in SHELL_TOOLS:
        if wanted not in by_name:
            continue
        name, schema = by_name[wanted]
        props = schema.get("properties") or {}
        if name == "local_shell":
            return name, {"command": ["bash", "-lc", command]}
        if "cmd" in props:
            args = {"cmd": command}
        elif (props.get("command") or {}).get("type") == "array":
            args = {"command": ["bash", "-lc", command]}
        else:
            args = {"command": command}
        if "description" in (schema.get("required") or []):
            args["description"] = "Run a command"
        return name, args
    return None


# ---- writing an answer -------------------------------------------------------------------------

_ids = itertools.count(1)


def new_id(prefix):
    return f"{prefix}_{os.getpid():x}{next(_ids):06d}"


# In a stream, a pause after a tool call's block ends and before the message does, as the real
# API's final events lag the last block: clients that start a tool at the end of its block
# (Claude Code's streaming tool executor) run it while the response is still open.
TAIL = None
TAIL_S = 0.5


def anthropic_answer(req, call, text, stream):
    model = req.get("model", "stub-model")
    content = [{"type": "text", "text": text}]
    if call:
        content.append({"type": "tool_use", "id": new_id("toolu"), "name": call[0],
                        "input": call[1]})
    stop = "tool_use" if call else "end_turn"
    usage = {"input_tokens": 100, "output_tokens": 20, "cache_creation_input_tokens": 0,
             "cache_read_input_tokens": 0}
    msg = {"id": new_id("msg"), "type": "message", "role": "assistant", "model": model,
           "content": content, "stop_reason": stop, "stop_sequence": None, "usage": usage}
    if not stream:
        return [json.dumps(msg)]
    events = [("message_start", {"type": "message_start",
                                 "message": {**msg, "content": [], "stop_reason": None}})]
    for i, block in enumerate(content):
        if block["type"] == "text":
            events.append(("content_block_start", {"type": "content_block_start", "index": i,
                                                   "content_block": {"type": "text", "text": ""}}))
            events.append(("content_block_delta", {"type": "content_block_delta", "index": i,
                                                   "delta": {"type": "text_delta", "text": text}}))
        else:
            events.append(("content_block_start", {"type": "content_block_start", "index": i,
                                                   "content_block": {**block, "input": {}}}))
            args = json.dumps(block["input"])
            for part in split3(args):
                events.append(("content_block_delta", {
                    "type": "content_block_delta", "index": i,
                    "delta": {"type": "input_json_delta", "partial_json": part}}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": i}))
        if block["type"] == "tool_use":
            events.append(TAIL)
    events.append(("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": stop, "stop_sequence": None},
                                     "usage": {"output_tokens": 20}}))
    events.append(("message_stop", {"type": "message_stop"}))
    return frames(events)


def responses_answer(req, call, text, stream):
    model = req.get("model", "stub-model")
    rid = new_id("resp")
    if call:
        name, args = call
        if name == "local_shell":
            item = {"type": "local_shell_call", "id": new_id("lsh"), "call_id": new_id("call"),
                    "status": "completed",
                    "action": {"type": "exec", "command": args["command"], "env": {}}}
        else:
            item = {"type": "function_call", "id": new_id("fc"), "call_id": new_id("call"),
                    "name": name, "arguments": json.dumps(args), "status": "completed"}
    else:
        item = {"type": "message", "id": new_id("msg"), "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": text, "annotations": []}]}
    usage = {"input_tokens": 100, "input_tokens_details": {"cached_tokens": 0},
             "output_tokens": 20, "output_tokens_details": {"reasoning_tokens": 0},
             "total_tokens": 120}
    done = {"id": rid, "object": "response", "created_at": int(time.time()), "model": model,
            "status": "completed", "output": [item], "usage": usage}
    if not stream:
        return [json.dumps(done)]
    events = [("response.created", {"type": "response.created",
                                    "response": {**done, "status": "in_progress", "output": [],
                                                 "usage": None}})]
    if item["type"] == "message":
        events.append(("response.output_item.added", {
            "type": "response.output_item.added", "output_index": 0,
            "item": {**item, "status": "in_progress", "content": []}}))
        events.append(("response.output_text.delta", {
            "type": "response.output_text.delta", "item_id": item["id"], "output_index": 0,
            "content_index": 0, "delta": text}))
    else:
        events.append(("response.output_item.added", {"type": "response.output_item.added",
                                                      "output_index": 0, "item": item}))
        if item["type"] == "function_call":
            for part in split3(item["arguments"]):
                events.append(("response.function_call_arguments.delta", {
                    "type": "response.function_call_arguments.delta", "item_id": item["id"],
                    "output_index": 0, "delta": part}))
    events.append(("response.output_item.done", {"type": "response.output_item.done",
                                                 "output_index": 0, "item": item}))
    if item["type"] != "message":
        events.append(TAIL)
    events.append(("response.completed", {"type": "response.completed", "response": done}))
    return frames(events)


def chat_answer(req, call, text, stream):
    model = req.get("model", "stub-model")
    cid = new_id("chatcmpl")
    created = int(time.time())
    usage = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
    message = {"role": "assistant", "content": text}
    tool_calls = []
    if call:
        tool_calls = [{"id": new_id("call"), "type": "function",
                       "function": {"name": call[0], "arguments": json.dumps(call[1])}}]
        message["tool_calls"] = tool_calls
    finish = "tool_calls" if call else "stop"
    if not stream:
        return [json.dumps({"id": cid, "object": "chat.completion", "created": created,
                            "model": model, "usage": usage,
                            "choices": [{"index": 0, "message": message,
                                         "finish_reason": finish}]})]

    def chunk(delta, finish_reason=None, with_usage=False):
        c = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
             "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}
        if with_usage:
            c["usage"] = usage
        return "data: " + json.dumps(c) + "\n\n"

    out = [chunk({"role": "assistant", "content": ""}), chunk({"content": text})]
    for i, tc in enumerate(tool_calls):
        out.append(chunk({"tool_calls": [{"index": i, "id": tc["id"], "type": "function",
                                          "function": {"name": tc["function"]["name"],
                                                       "arguments": ""}}]}))
        for part in split3(tc["function"]["arguments"]):
            out.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": part}}]}))
    out.append(chunk({}, finish, with_usage=True))
    out.append("data: [DONE]\n\n")
    return out


def gemini_answer(req, call, text, stream):
    model = req.get("model", "stub-model")
    rid = new_id("resp")
    usage = {"promptTokenCount": 100, "candidatesTokenCount": 20, "totalTokenCount": 120}

    def chunk(parts, last):
        cand = {"content": {"role": "model", "parts": parts}, "index": 0}
        c = {"candidates": [cand], "modelVersion": model, "responseId": rid}
        if last:
            cand["finishReason"] = "STOP"
            c["usageMetadata"] = usage
        return c

    call_part = []
    if call:
        call_part = [{"functionCall": {"id": new_id("call"), "name": call[0], "args": call[1]}}]
    if not stream:
        return [json.dumps(chunk([{"text": text}] + call_part, True))]
    # The text in pieces; the last piece with the call whole (Gemini streams a call in one part)
    # and the finish reason.
    pieces = [p for p in split3(text) if p] or [text]
    out = [chunk([{"text": p}], False) for p in pieces[:-1]]
    out.append(chunk([{"text": pieces[-1]}] + call_part, True))
    return ["data: " + json.dumps(c) + "\r\n\r\n" for c in out]


def split3(s):
    """A string in three pieces, so clients must reassemble streamed arguments."""
    k = max(1, len(s) // 3)
    return [s[:k], s[k:2 * k], s[2 * k:]]


def sse(event, data):
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def frames(events):
    """A stream's parts: each (event, data) as SSE, each TAIL kept as the pause it is."""
    return [e if e is TAIL else sse(*e) for e in events]


ANSWERS = {"anthropic": anthropic_answer, "responses": responses_answer, "chat": chat_answer,
           "gemini": gemini_answer}


# ---- the server --------------------------------------------------------------------------------

class Script:
    """The steps and what happened to them, shared by the handler threads."""

    def __init__(self, steps, log=None):
        self.steps = steps
        self.lock = threading.Lock()
        self.started = None
        self.served = []  # (step index, api, tool name) in the order they were answered
        self.requests = 0
        self.finished = False
        self.log = log
        self.gate = None
        self.gate_open_on_arrival = None
        # Monotonic times of the first request and of the final answer: the agent's task time
        # without its start-up and exit (nor a monitor's).
        self.first_request_at = None
        self.finished_at = None
        # Seconds the stub held answers on purpose (the baseline gate and not_before_s): not
        # the agent's work, and longer under proctor, whose gate is its baseline record.
        self.held_s = 0.0

    def record(self, entry):
        if self.log:
            with self.lock:
                self.log.write(json.dumps(entry) + "\n")
                self.log.flush()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "llm-stub"

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        # Model listings and health checks some CLIs make at start-up.
        self.send_json(200, {"object": "list", "data": [], "models": []})

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else self.read_chunked()
        path = self.path.split("?")[0]
        api = api_of(path)
        script = self.server.script
        if path.endswith("/count_tokens"):
            return self.send_json(200, {"input_tokens": 100})
        if path.endswith(":countTokens"):
            return self.send_json(200, {"totalTokens": 100})
        if api is None:
            script.record({"path": path, "answer": 404})
            return self.send_json(404, {"error": {"message": f"no such endpoint {path}"}})
        try:
            req = json.loads(body or b"{}")
        except ValueError:
            return self.send_json(400, {"error": {"message": "body is not JSON"}})
        if api == "gemini":
            req["model"] = gemini_model(path)
        stream = is_stream(req, api, path)
        tools = tool_defs(req, api)
        call = None
        text = SIDE_TEXT
        entry = {"path": path, "api": api, "stream": stream,
                 "model": req.get("model"), "tools": [n for n, _ in tools]}
        schema = None if tools else json_schema_wanted(req, api)
        if schema is not None:
            text = json.dumps(schema_instance(schema))
            entry["json"] = text
        with script.lock:
            script.requests += 1
            if script.first_request_at is None:
                script.first_request_at = time.monotonic()
        if tools:
            index = results_count(req, api)
            with script.lock:
                if script.started is None:
                    script.started = time.monotonic()
                started = script.started
            entry["step"] = index
            if index < len(script.steps):
                step = script.steps[index]
                call = shell_call(tools, step["cmd"])
                if call is None:
                    entry["error"] = "no shell tool offered"
                    text = "I have no shell tool."
                else:
                    hold_from = time.monotonic()
                    if step.get("gate") and script.gate:
                        with script.lock:
                            if script.gate_open_on_arrival is None:
                                script.gate_open_on_arrival = script.gate()
                        deadline = time.monotonic() + 600
                        while not script.gate() and time.monotonic() < deadline:
                            time.sleep(0.1)
                    wait = started + step.get("not_before_s", 0) - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                    with script.lock:
                        script.held_s += time.monotonic() - hold_from
                    text = step.get("say", "Next I run a command.")
                    with script.lock:
                        script.served.append((index, api, call[0]))
                    entry["call"] = call[1]
            else:
                text = FINAL_TEXT
                with script.lock:
                    script.finished = True
                    script.finished_at = time.monotonic()
        script.record(entry)
        parts = ANSWERS[api](req, call, text, stream)
        if stream:
            self.send_stream(parts)
        else:
            self.send_body(200, "application/json", parts[0].encode())

    def read_chunked(self):
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return b""
        data = b""
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return data
            data += self.rfile.read(size)
            self.rfile.readline()

    def send_json(self, code, obj):
        self.send_body(code, "application/json", json.dumps(obj).encode())

    def send_body(self, code, ctype, data):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_stream(self, parts):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for p in parts:
            if p is TAIL:
                time.sleep(TAIL_S)
                continue
            b = p.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(b), b))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve(steps, host="127.0.0.1", port=0, tls=None, log=None):
    """Start the stub in a thread. `tls` is (cert, key) or None. Returns the server; its
    `script` attribute tells what was served."""
    srv = Server((host, port), Handler)
    srv.script = Script(steps, log)
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*tls)
        ctx.set_alpn_protocols(["http/1.1"])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--script", required=True, help="JSON list of {cmd, not_before_s?}")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--tls", metavar="DIR", help="make a CA and leaf in DIR and serve HTTPS")
    a = ap.parse_args()
    with open(a.script) as f:
        steps = json.load(f)
    tls = None
    if a.tls:
        os.makedirs(a.tls, mode=0o700, exist_ok=True)
        ca, cert, key = make_ca(a.tls)
        tls = (cert, key)
    srv = serve(steps, port=a.port, tls=tls, log=sys.stderr)
    scheme = "https" if tls else "http"
    print(f"{scheme}://127.0.0.1:{srv.server_address[1]}", flush=True)
    if tls:
        print(ca, flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
