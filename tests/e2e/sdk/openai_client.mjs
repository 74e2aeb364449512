// Drives chela's /v1 API with the official OpenAI SDK, unchanged.
// Usage: node openai_client.mjs <baseURL> <apiKey> <model>
// Prints one JSON object with what the SDK returned.
import OpenAI from "openai";

const [baseURL, apiKey, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 20000 });
const out = {};

const done = await client.chat.completions.create({
  model,
  messages: [{ role: "system", content: "be brief" }, { role: "user", content: "hello sdk" }],
});
out.nonStream = { id: done.id, content: done.choices[0].message.content,
  finish: done.choices[0].finish_reason, usage: done.usage };

const stream = await client.chat.completions.create({
  model, stream: true, stream_options: { include_usage: true },
  messages: [{ role: "user", content: "stream please" }],
});
let text = "", chunks = 0, usage = null, finish = null;
for await (const chunk of stream) {
  chunks++;
  if (chunk.usage) usage = chunk.usage;
  const c = chunk.choices[0];
  if (c) { text += c.delta?.content ?? ""; if (c.finish_reason) finish = c.finish_reason; }
}
out.stream = { text, chunks, usage, finish };

// JSON mode with the sampling parameters the SDK types: they reach the upstream
const json = await client.chat.completions.create({
  model, response_format: { type: "json_object" }, seed: 7, top_p: 0.5, stop: ["\n\n"],
  messages: [{ role: "user", content: "answer in JSON" }],
});
out.json = { content: json.choices[0].message.content };
try {
  await client.chat.completions.create({ model, top_p: 2, messages: [{ role: "user", content: "x" }] });
  out.badParam = null;
} catch (e) {
  out.badParam = { status: e.status, name: e.constructor.name, param: e.param ?? null, code: e.code ?? null };
}

// The Responses API: a provider model, whole and streamed, then the agent
// with a session carried by previous_response_id
const resp = await client.responses.create({ model, input: "responses please", instructions: "be brief" });
out.responses = { id: resp.id, text: resp.output_text, status: resp.status, usage: resp.usage };
const rstream = await client.responses.create({ model, input: "stream responses", stream: true });
let rtext = "", rfinal = null;
const rtypes = [];
for await (const ev of rstream) {
  rtypes.push(ev.type);
  if (ev.type === "response.output_text.delta") rtext += ev.delta;
  if (ev.type === "response.completed") rfinal = ev.response;
}
out.responsesStream = { text: rtext, first: rtypes[0], last: rtypes[rtypes.length - 1],
  finalText: rfinal ? rfinal.output.filter((i) => i.type === "message")
    .map((i) => i.content.map((c) => c.text).join("")).join("") : null };
const a1 = await client.responses.create({ model: "openclaw", input: "remember 5" });
const a2 = await client.responses.create({ model: "openclaw", input: "which?", previous_response_id: a1.id });
out.chain = { text: a2.output_text, prev: a2.previous_response_id === a1.id };

// embeddings: the SDK asks for base64 by default and decodes it itself
const emb = await client.embeddings.create({ model, input: ["alpha", "beta"] });
out.embeddings = { n: emb.data.length, vectors: emb.data.map((d) => Array.from(d.embedding)), usage: emb.usage };

const models = await client.models.list();
out.models = models.data.map((m) => m.id);

try {
  await client.chat.completions.create({ model: "nope/none", messages: [{ role: "user", content: "x" }] });
  out.error = null;
} catch (e) {
  out.error = { status: e.status, name: e.constructor.name, code: e.code ?? null };
}
// Client tools with the agent: the call comes back as tool_calls, the
// result goes back as a tool message, as with any OpenAI model
const tools = [{ type: "function", function: { name: "get_weather",
  parameters: { type: "object", properties: { city: { type: "string" } } } } }];
const ask = { role: "user", content: "weather in Oslo?" };
const t1 = await client.chat.completions.create({ model: "openclaw", tools, messages: [ask] });
const call = t1.choices[0].message.tool_calls[0];
const t2 = await client.chat.completions.create({ model: "openclaw", tools, messages: [
  ask, t1.choices[0].message, { role: "tool", tool_call_id: call.id, content: "sunny, 12C" }] });
out.clientTools = { finish: t1.choices[0].finish_reason, name: call.function.name,
  args: JSON.parse(call.function.arguments), text: t2.choices[0].message.content };
// Files: a PDF as OpenAI's file parts, through both APIs (chela reads it)
const pdf = process.env.CHELA_TEST_PDF_B64;
const dataUrl = `data:application/pdf;base64,${pdf}`;
const f1 = await client.chat.completions.create({ model, messages: [{ role: "user", content: [
  { type: "text", text: "summarize" }, { type: "file", file: { filename: "report.pdf", file_data: dataUrl } }] }] });
const f2 = await client.responses.create({ model, input: [{ role: "user", content: [
  { type: "input_text", text: "summarize" }, { type: "input_file", filename: "report.pdf", file_data: dataUrl }] }] });
out.files = { chat: f1.choices[0].message.content, responses: f2.output_text };
console.log(JSON.stringify(out));
