// validate_frames.mjs: check every frame chela sent (JSON lines on stdin)
// against @openclaw/gateway-protocol's protocol.schema.json with ajv.
//
//   node validate_frames.mjs < frames.jsonl
//
// Each frame must match the root schema (a closed RequestFrame,
// ResponseFrame or EventFrame).  Payloads with a published definition
// are checked too: hello-ok (HelloOk), tick (TickEvent), shutdown
// (ShutdownEvent), chat (ChatEvent), presence entries (PresenceEntry),
// the health snapshot (Snapshot.health).  Agent event payloads are
// checked against AgentEvent with `sessionKey` allowed: the reference
// server sends it (spec 2.3) although the published definition omits it.
// Prints a summary line "N passed, M failed" and exits 1 on any failure.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";

const require = createRequire(import.meta.url);
const Ajv = require("ajv");
const addFormats = require("ajv-formats");
// The package does not export the file: find it next to its package.json.
const pkgDir = join(dirname(require.resolve("ajv/package.json")), "..", "@openclaw", "gateway-protocol");
const schema = JSON.parse(readFileSync(join(pkgDir, "protocol.schema.json"), "utf8"));

// The root`s discriminator uses `mapping`, which ajv does not implement; the
// oneOf it annotates is validated as is (strict: false ignores the keyword).
const ajv = new Ajv({ strict: false, allErrors: true });
addFormats(ajv);
ajv.addSchema(schema, "p");
const root = ajv.getSchema("p");
const def = (name) => ajv.getSchema(`p#/definitions/${name}`);
const agentEvent = structuredClone(schema.definitions.AgentEvent);
agentEvent.properties.sessionKey = { type: "string", minLength: 1 };
const agentEventCheck = ajv.compile({ ...agentEvent, definitions: schema.definitions });
const healthCheck = ajv.compile({ ...schema.definitions.Snapshot.properties.health, definitions: schema.definitions });

const checks = {
  "hello-ok": def("HelloOk"),
  tick: def("TickEvent"),
  shutdown: def("ShutdownEvent"),
  chat: def("ChatEvent"),
  agent: agentEventCheck,
  health: healthCheck,
  presenceEntry: def("PresenceEntry"),
};

let pass = 0, fail = 0;
const lines = readFileSync(0, "utf8").split("\n").filter((l) => l.trim());
function report(ok, what, frame, errors) {
  if (ok) { pass++; return; }
  fail++;
  console.log(`FAIL ${what}: ${JSON.stringify(frame).slice(0, 400)}\n  ${ajv.errorsText(errors)}`);
}
for (const line of lines) {
  let f;
  try { f = JSON.parse(line); } catch { report(false, "json", line, [{ message: "not JSON" }]); continue; }
  report(root(f), "frame", f, root.errors);
  if (f.type === "res" && f.ok && f.payload && f.payload.type === "hello-ok")
    report(checks["hello-ok"](f.payload), "hello-ok", f.payload, checks["hello-ok"].errors);
  if (f.type === "event" && checks[f.event]) {
    const c = checks[f.event];
    report(c(f.payload), `event ${f.event}`, f.payload, c.errors);
  }
  if (f.type === "event" && f.event === "presence")
    for (const e of f.payload?.presence ?? [])
      report(checks.presenceEntry(e), "presence entry", e, checks.presenceEntry.errors);
}
console.log(`${pass} passed, ${fail} failed`);
process.exit(fail ? 1 : 0);
