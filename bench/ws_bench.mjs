// bench/ws_bench.mjs: load generator for bench/ws.sh (and the Node `ws`
// server it compares chela with).  Uses the `ws` package from the
// conformance cache (tests/conformance/setup.sh).  Loopback only.
//
//   node ws_bench.mjs handshakes URL TOKEN SECONDS CONCURRENCY
//       open, read connect.challenge, send connect, read hello-ok, close;
//       prints "handshakes N rate R/s errors E"
//   node ws_bench.mjs idle URL TOKEN COUNT
//       open COUNT authenticated connections, print "ready N", then hold
//       them until stdin closes
//   node ws_bench.mjs server PORT
//       a Node `ws` server doing the same frames: challenge on open,
//       hello-ok for a connect request; prints "listening PORT"
import { createRequire } from "node:module";
import { randomUUID } from "node:crypto";

const require = createRequire(process.env.CHELA_CONFORMANCE_DIR + "/package.json");
const WebSocket = require("ws");
const [mode, a1, a2, a3, a4] = process.argv.slice(2);

function connectFrame(token) {
  return JSON.stringify({ type: "req", id: "c", method: "connect", params: {
    minProtocol: 3, maxProtocol: 4,
    client: { id: "gateway-client", version: "1.0.0", platform: "linux", mode: "backend" },
    role: "operator", scopes: ["operator.read"], auth: { token } } });
}

function handshake(url, token, keep) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    let stage = 0;
    ws.on("message", (m) => {
      if (stage === 0) { stage = 1; ws.send(connectFrame(token)); return; }
      if (stage === 1) {
        stage = 2;
        const ok = JSON.parse(m.toString()).ok === true;
        if (keep) resolve({ ok, ws }); else { ws.close(); resolve({ ok }); }
      }
    });
    ws.on("error", () => { if (stage < 2) { stage = 3; resolve({ ok: false }); } });
    ws.on("close", () => { if (stage < 2) { stage = 3; resolve({ ok: false }); } });
  });
}

if (mode === "handshakes") {
  const [url, token, secs, conc] = [a1, a2, Number(a3), Number(a4)];
  const end = Date.now() + secs * 1000;
  let n = 0, errors = 0;
  const t0 = Date.now();
  await Promise.all(Array.from({ length: conc }, async () => {
    while (Date.now() < end) {
      const r = await handshake(url, token, false);
      if (r.ok) n++; else errors++;
    }
  }));
  const dt = (Date.now() - t0) / 1000;
  console.log(`handshakes ${n} rate ${(n / dt).toFixed(0)}/s errors ${errors}`);
  process.exit(0);
} else if (mode === "idle") {
  const [url, token, count] = [a1, a2, Number(a3)];
  const socks = [];
  let ok = 0;
  for (let i = 0; i < count; i += 200) {
    const batch = await Promise.all(Array.from({ length: Math.min(200, count - i) }, () => handshake(url, token, true)));
    for (const r of batch) { if (r.ok) ok++; if (r.ws) socks.push(r.ws); }
  }
  console.log(`ready ${ok}`);
  process.stdin.resume();
  process.stdin.on("end", () => { for (const s of socks) s.terminate(); process.exit(0); });
} else if (mode === "server") {
  const wss = new WebSocket.WebSocketServer({ host: "127.0.0.1", port: Number(a1), perMessageDeflate: false });
  wss.on("connection", (ws) => {
    const nonce = randomUUID();
    ws.send(JSON.stringify({ type: "event", event: "connect.challenge", payload: { nonce, ts: Date.now() } }));
    ws.on("message", (m) => {
      const f = JSON.parse(m.toString());
      if (f.method === "connect")
        ws.send(JSON.stringify({ type: "res", id: f.id, ok: true, payload: { type: "hello-ok", protocol: 4,
          server: { version: "node-ws", connId: randomUUID() },
          features: { methods: ["health"], events: ["tick"] },
          snapshot: { presence: [], health: {}, stateVersion: { presence: 1, health: 1 }, uptimeMs: 0 },
          auth: { role: "operator", scopes: ["operator.read"] },
          policy: { maxPayload: 26214400, maxBufferedBytes: 52428800, tickIntervalMs: 30000 } } }));
    });
  });
  wss.on("listening", () => console.log(`listening ${a1}`));
}
