// A small LLM API client in Node.js for the stub (demo/llm_stub.py), as the Node SDKs talk:
// fetch (undici, HTTP/1.1 keep-alive) over Node's TLS, a bearer key in the headers, and a
// streamed (SSE) answer read to its end. Prints the tool calls it was asked for, one JSON line
// per request. Trust comes from NODE_EXTRA_CA_CERTS (Node reads it at start-up).
//
// Usage: node llm_client.mjs BASE_URL (openai|anthropic) [stream]
const [base, api, stream] = process.argv.slice(2);
const key = api === "openai"
  ? "sk-proj-nodeSECRETnodeSECRETnodeSECRET0123456789"
  : "sk-ant-api03-nodeSECRETnodeSECRETnodeSECRET-0123456789";
const schema = { type: "object", properties: { command: { type: "string" } } };
const body = api === "openai"
  ? { model: "gpt-4o", stream: !!stream, messages: [{ role: "user", content: "hi" }],
      tools: [{ type: "function", function: { name: "run_shell", parameters: schema } }] }
  : { model: "claude-sonnet-4-5", max_tokens: 256, stream: !!stream,
      messages: [{ role: "user", content: "hi" }],
      tools: [{ name: "run_shell", input_schema: schema }] };
const path = api === "openai" ? "/v1/chat/completions" : "/v1/messages";
const headers = { "content-type": "application/json" };
if (api === "openai") headers.authorization = `Bearer ${key}`;
else { headers["x-api-key"] = key; headers["anthropic-version"] = "2023-06-01"; }
const res = await fetch(base + path, { method: "POST", headers, body: JSON.stringify(body) });
const text = await res.text();
if (res.status !== 200) {
  console.error(`status ${res.status}: ${text}`);
  process.exit(1);
}
console.log(JSON.stringify({ status: res.status, bytes: text.length, tool: text.includes("run_shell") }));
