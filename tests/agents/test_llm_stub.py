#!/usr/bin/env python3
"""The LLM stub in every wire format it claims, without any agent: each API, streamed and not,
over HTTP and over HTTPS checked against the per-run CA. A request that offers a shell tool gets
the next scripted command as a call of that tool; side requests get text; after the last step
the answer is a final text. Streamed answers are reassembled the way SDKs do."""

import http.client
import json
import os
import ssl
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llm_stub  # noqa: E402

STEPS = [{"cmd": "ls -la"}, {"cmd": "git status"}]
BASH = {"type": "object", "properties": {"command": {"type": "string"}},
        "required": ["command"]}
ARGV = {"type": "object", "properties": {"command": {"type": "array"}}}


def request(api, done, stream):
    """A request body offering a shell tool, carrying `done` tool results."""
    if api == "anthropic":
        msgs = [{"role": "user", "content": "hi"}]
        for i in range(done):
            msgs.append({"role": "assistant", "content": [
                {"type": "tool_use", "id": f"t{i}", "name": "Bash", "input": {}}]})
            msgs.append({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": f"t{i}", "content": "ok"}]})
        return "/v1/messages", {"model": "m", "stream": stream, "messages": msgs,
                                "tools": [{"name": "Bash", "input_schema": BASH}]}
    if api == "responses":
        items = [{"type": "message", "role": "user", "content": "hi"}]
        for i in range(done):
            items.append({"type": "function_call", "call_id": f"c{i}", "name": "shell",
                          "arguments": "{}"})
            items.append({"type": "function_call_output", "call_id": f"c{i}", "output": "ok"})
        return "/v1/responses", {"model": "m", "stream": stream, "input": items,
                                 "tools": [{"type": "function", "name": "shell",
                                            "parameters": ARGV}]}
    if api == "gemini":
        contents = [{"role": "user", "parts": [{"text": "hi"}]}]
        for i in range(done):
            contents.append({"role": "model", "parts": [
                {"functionCall": {"id": f"c{i}", "name": "run_shell_command", "args": {}}}]})
            contents.append({"role": "user", "parts": [
                {"functionResponse": {"id": f"c{i}", "name": "run_shell_command",
                                      "response": {"output": "ok"}}}]})
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return f"/v1beta/models/gemini-2.5-pro:{method}", {
            "contents": contents,
            "tools": [{"functionDeclarations": [{"name": "run_shell_command",
                                                 "parametersJsonSchema": BASH}]}]}
    msgs = [{"role": "user", "content": "hi"}]
    for i in range(done):
        msgs.append({"role": "assistant", "tool_calls": [
            {"id": f"c{i}", "type": "function", "function": {"name": "bash", "arguments": "{}"}}]})
        msgs.append({"role": "tool", "tool_call_id": f"c{i}", "content": "ok"})
    return "/v1/chat/completions", {
        "model": "m", "stream": stream, "messages": msgs,
        "tools": [{"type": "function", "function": {"name": "bash", "parameters": BASH}}]}


def events(body):
    """The JSON data of each SSE event."""
    out = []
    for block in body.split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data: ") and line != "data: [DONE]":
                out.append(json.loads(line[6:]))
    return out


def tool_call(api, body, stream):
    """(tool name, arguments) the answer asks for, or (None, final text)."""
    if api == "anthropic":
        if not stream:
            msg = json.loads(body)
            calls = [c for c in msg["content"] if c["type"] == "tool_use"]
            if calls:
                return calls[0]["name"], calls[0]["input"]
            return None, msg["content"][0]["text"]
        name, args, text = None, "", ""
        for e in events(body):
            if e["type"] == "content_block_start" and e["content_block"]["type"] == "tool_use":
                name = e["content_block"]["name"]
            elif e["type"] == "content_block_delta":
                args += e["delta"].get("partial_json", "")
                text += e["delta"].get("text", "")
        return (name, json.loads(args)) if name else (None, text)
    if api == "responses":
        if stream:
            done = [e for e in events(body) if e["type"] == "response.completed"]
            item = done[0]["response"]["output"][0]
        else:
            item = json.loads(body)["output"][0]
        if item["type"] == "function_call":
            return item["name"], json.loads(item["arguments"])
        return None, item["content"][0]["text"]
    if api == "gemini":
        chunks = events(body) if stream else [json.loads(body)]
        name, args, text = None, None, ""
        for c in chunks:
            for part in c["candidates"][0]["content"]["parts"]:
                text += part.get("text", "")
                if "functionCall" in part:
                    name, args = part["functionCall"]["name"], part["functionCall"]["args"]
        return (name, args) if name else (None, text)
    if not stream:
        msg = json.loads(body)["choices"][0]["message"]
        if msg.get("tool_calls"):
            f = msg["tool_calls"][0]["function"]
            return f["name"], json.loads(f["arguments"])
        return None, msg["content"]
    name, args, text = None, "", ""
    for e in events(body):
        d = e["choices"][0]["delta"]
        text += d.get("content") or ""
        for tc in d.get("tool_calls") or []:
            name = tc.get("function", {}).get("name") or name
            args += tc.get("function", {}).get("arguments", "")
    return (name, json.loads(args)) if name else (None, text)


class StubTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        ca, cert, key = llm_stub.make_ca(cls.tmp.name)
        cls.ctx = ssl.create_default_context(cafile=ca)
        cls.servers = {"http": llm_stub.serve(STEPS),
                       "https": llm_stub.serve(STEPS, tls=(cert, key))}

    @classmethod
    def tearDownClass(cls):
        for s in cls.servers.values():
            s.shutdown()
        cls.tmp.cleanup()

    def post(self, scheme, path, body):
        port = self.servers[scheme].server_address[1]
        if scheme == "https":
            conn = http.client.HTTPSConnection("localhost", port, context=self.ctx, timeout=10)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read().decode()
        conn.close()
        self.assertEqual(resp.status, 200, data)
        return data

    def test_every_api_stream_and_transport(self):
        expected_args = {"anthropic": lambda c: {"command": c},
                         "responses": lambda c: {"command": ["bash", "-lc", c]},
                         "chat": lambda c: {"command": c},
                         "gemini": lambda c: {"command": c}}
        for scheme in ("http", "https"):
            for api in ("anthropic", "responses", "chat", "gemini"):
                for stream in (False, True):
                    with self.subTest(scheme=scheme, api=api, stream=stream):
                        for done, step in enumerate(STEPS):
                            path, body = request(api, done, stream)
                            name, args = tool_call(api, self.post(scheme, path, body), stream)
                            self.assertIsNotNone(name)
                            self.assertEqual(args, expected_args[api](step["cmd"]))
                        path, body = request(api, len(STEPS), stream)
                        name, text = tool_call(api, self.post(scheme, path, body), stream)
                        self.assertIsNone(name)
                        self.assertEqual(text, llm_stub.FINAL_TEXT)

    def test_side_request_without_tools_gets_text(self):
        path, body = request("anthropic", 0, False)
        del body["tools"]
        name, text = tool_call("anthropic", self.post("http", path, body), False)
        self.assertEqual((name, text), (None, llm_stub.SIDE_TEXT))

    def test_side_request_for_json_gets_an_instance_of_its_schema(self):
        # Gemini CLI's "who speaks next" check: JSON that names the user ends the turn.
        schema = {"type": "OBJECT", "properties": {
            "reasoning": {"type": "STRING"},
            "next_speaker": {"type": "STRING", "enum": ["user", "model"]}},
            "required": ["reasoning", "next_speaker"]}
        path, body = request("gemini", 0, False)
        del body["tools"]
        body["generationConfig"] = {"responseMimeType": "application/json",
                                    "responseJsonSchema": schema}
        name, text = tool_call("gemini", self.post("http", path, body), False)
        self.assertIsNone(name)
        self.assertEqual(json.loads(text), {"reasoning": "", "next_speaker": "user"})

    def test_gemini_token_count(self):
        data = self.post("http", "/v1beta/models/gemini-2.5-pro:countTokens", {"contents": []})
        self.assertEqual(json.loads(data), {"totalTokens": 100})


if __name__ == "__main__":
    unittest.main()
