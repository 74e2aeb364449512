#!/usr/bin/python3
"""Generate src/api/oc_schema_gen.c from OpenClaw's protocol.schema.json.

The C validator (src/api/oc_schema.c) walks `struct oc_node` trees; this
script turns the published JSON schemas of ConnectParams and of the params
of every method chela implements into such trees, so the closed-object
checks and their error texts follow the schema instead of a retyped copy
(spec 0: "generate the C validators from that file").

    tests/conformance/setup.sh
    /usr/bin/python3 tests/conformance/gen_oc_schema.py \
        build/conformance/node_modules/@openclaw/gateway-protocol/protocol.schema.json \
        > src/api/oc_schema_gen.c

Supported keywords: type, const, enum, anyOf of string constants (enum
with the anyOf wording), anyOf [X, null] (nullable), properties, required,
additionalProperties false, patternProperties "^.*$", items, minLength,
maxLength, minItems, maxItems, minimum, maximum.  Anything else (pattern,
uniqueItems, not, maxProperties, other anyOf mixes) is not checked: the
node accepts any value of its type, and the handler checks what it uses.
"""
import json
import sys

# method -> definition name (None: the method takes no documented params;
# an open object is accepted, as the reference gateway does).
METHODS = {
    "agent": "AgentParams",
    "agent.wait": "AgentWaitParams",
    "send": "SendParams",
    "wake": "WakeParams",
    "sessions.list": "SessionsListParams",
    "sessions.preview": "SessionsPreviewParams",
    "sessions.patch": "SessionsPatchParams",
    "sessions.reset": "SessionsResetParams",
    "sessions.delete": "SessionsDeleteParams",
    "sessions.compact": "SessionsCompactParams",
    "sessions.usage": "SessionsUsageParams",
    "chat.history": "ChatHistoryParams",
    "chat.send": "ChatSendParams",
    "chat.abort": "ChatAbortParams",
    "chat.inject": "ChatInjectParams",
    "tools.invoke": "ToolsInvokeParams",
    "config.get": "ConfigGetParams",
    "logs.tail": "LogsTailParams",
    "models.list": "ModelsListParams",
    "agents.list": "AgentsListParams",
    "channels.status": "ChannelsStatusParams",
    "cron.list": "CronListParams",
    "cron.status": "CronStatusParams",
    "device.pair.list": "DevicePairListParams",
    "device.pair.approve": "DevicePairApproveParams",
    "device.pair.reject": "DevicePairRejectParams",
    "device.pair.remove": "DevicePairRemoveParams",
    "device.token.rotate": "DeviceTokenRotateParams",
    "device.token.revoke": "DeviceTokenRevokeParams",
}

# Methods whose params have no definition in the published schema: the
# shapes of spec 2.2, closed like the rest.
EXTRA = {
    "health": {"type": "object", "properties": {"probe": {"type": "boolean"}}, "additionalProperties": False},
    "status": {"type": "object", "properties": {"includeChannelSummary": {"type": "boolean"},
                                                "includeCliProjection": {"type": "boolean"}},
               "additionalProperties": False},
    "sessions.get": {"type": "object", "required": ["key"],
                     "properties": {"key": {"type": "string", "minLength": 1},
                                    "agentId": {"type": "string", "minLength": 1},
                                    "limit": {"type": "integer", "minimum": 1}},
                     "additionalProperties": False},
    "system-presence": {"type": "object", "properties": {}, "additionalProperties": False},
    "system-event": {"type": "object", "required": ["text"],
                     "properties": {"text": {"type": "string", "minLength": 1},
                                    "deviceId": {"type": "string"}, "instanceId": {"type": "string"},
                                    "host": {"type": "string"}, "ip": {"type": "string"},
                                    "mode": {"type": "string"}, "version": {"type": "string"},
                                    "platform": {"type": "string"}, "deviceFamily": {"type": "string"},
                                    "modelIdentifier": {"type": "string"},
                                    "lastInputSeconds": {"type": "integer", "minimum": 0},
                                    "reason": {"type": "string"},
                                    "roles": {"type": "array", "items": {"type": "string"}},
                                    "scopes": {"type": "array", "items": {"type": "string"}},
                                    "tags": {"type": "array", "items": {"type": "string"}},
                                    "sessionKey": {"type": "string", "minLength": 1}},
                     "additionalProperties": False},
    "usage.status": {"type": "object", "properties": {}, "additionalProperties": False},
    "usage.cost": {"type": "object", "properties": {
        "startDate": {"type": "string"}, "endDate": {"type": "string"},
        "days": {"type": "integer", "minimum": 1},
        "mode": {"anyOf": [{"type": "string", "const": "utc"}, {"type": "string", "const": "gateway"},
                           {"type": "string", "const": "specific"}]},
        "utcOffset": {"type": "string"}, "timeZone": {"type": "string"}},
        "additionalProperties": False},
}

# Deliberate deviations from the published schema, each for a client that
# must keep working: seed 001's pharmacy backend calls `agent` without an
# idempotencyKey (chela generates one; spec 2.2 and issue #5 item 3).
OPTIONAL = {"agent": ["idempotencyKey"]}

MAX_DEPTH = 3

TYPES = {"string": "OC_T_STRING", "integer": "OC_T_INT", "number": "OC_T_NUM", "boolean": "OC_T_BOOL",
         "object": "OC_T_OBJ", "array": "OC_T_ARR", "null": "OC_T_NULL"}


class Gen:
    def __init__(self, defs):
        self.defs = defs
        self.out = []
        self.n = 0
        self.memo = {}
        self.bodies = {}
        self.lists = {}

    def cstr(self, s):
        return json.dumps(s)

    def strlist(self, items):
        k = tuple(items)
        if k in self.lists:
            return self.lists[k]
        self.n += 1
        name = f"s{self.n}"
        body = ", ".join(self.cstr(x) for x in items)
        self.out.append(f"static const char *const {name}[] = {{ {body}{', ' if items else ''}NULL }};")
        self.lists[k] = name
        return name

    def resolve(self, s):
        while isinstance(s, dict) and "$ref" in s:
            s = self.defs[s["$ref"].split("/")[-1]]
        return s

    def node(self, s, depth=0):
        s = self.resolve(s)
        key = json.dumps(s, sort_keys=True) + f"@{min(depth, MAX_DEPTH)}"
        if key in self.memo:
            return self.memo[key]
        fields = {"type": "OC_T_ANY", "flags": [], "minl": -1, "maxl": -1, "min": "0", "max": "0",
                  "values": "NULL", "props": "NULL", "required": "NULL", "items": "NULL"}
        any_of = s.get("anyOf")
        if any_of is not None:
            branches = [self.resolve(b) for b in any_of]
            nulls = [b for b in branches if b.get("type") == "null"]
            rest = [b for b in branches if b.get("type") != "null"]
            if nulls and len(rest) == 1 and len(branches) == 2:
                inner = self.node(rest[0], depth)
                ref = self.emit_nullable(inner)
                self.memo[key] = ref
                return ref
            flat = []
            ok = True
            for b in rest:
                if b.get("type") == "string" and "const" in b and len(b) == 2:
                    flat.append(b["const"])
                elif "anyOf" in b and all(self.resolve(x).get("type") == "string" and "const" in self.resolve(x)
                                          for x in b["anyOf"]):
                    flat.extend(self.resolve(x)["const"] for x in b["anyOf"])
                else:
                    ok = False
            if ok and flat and not nulls:
                fields["type"] = "OC_T_STRING"
                fields["flags"].append("OC_F_ENUM_ANYOF")
                fields["values"] = self.strlist(flat)
            return self.finish(key, fields)
        if "enum" in s and all(isinstance(v, str) for v in s["enum"]):
            fields["type"] = "OC_T_STRING"
            fields["flags"].append("OC_F_ENUM")
            fields["values"] = self.strlist(s["enum"])
            return self.finish(key, fields)
        t = s.get("type")
        if isinstance(t, str) and t in TYPES:
            fields["type"] = TYPES[t]
        if "const" in s and isinstance(s["const"], str):
            fields["type"] = "OC_T_STRING"
            fields["flags"].append("OC_F_CONST")
            fields["values"] = self.strlist([s["const"]])
        for kw, f in (("minLength", "minl"), ("minItems", "minl")):
            if kw in s:
                fields[f] = str(int(s[kw]))
        for kw, f in (("maxLength", "maxl"), ("maxItems", "maxl")):
            if kw in s:
                fields[f] = str(int(s[kw]))
        if "minimum" in s:
            fields["flags"].append("OC_F_MIN")
            fields["min"] = repr(float(s["minimum"]))
        if "maximum" in s:
            fields["flags"].append("OC_F_MAX")
            fields["max"] = repr(float(s["maximum"]))
        if t == "object" and depth < MAX_DEPTH:
            props = s.get("properties", {})
            if props:
                entries = [(name, self.node(p, depth + 1)) for name, p in props.items()]
                self.n += 1
                pname = f"p{self.n}"
                # Several entries per line keep the generated file short.
                items = [f"{{ {self.cstr(nm)}, &{ref} }}," for nm, ref in entries] + ["{ NULL, NULL },"]
                lines, cur = [], "   "
                for it in items:
                    if len(cur) + len(it) + 1 > 118:
                        lines.append(cur)
                        cur = "   "
                    cur += " " + it
                lines.append(cur)
                body = "\n".join(lines)
                self.out.append(f"static const struct oc_prop {pname}[] = {{\n{body}\n}};")
                fields["props"] = pname
            if s.get("required"):
                fields["required"] = self.strlist(s["required"])
            if s.get("additionalProperties") is False:
                fields["flags"].append("OC_F_CLOSED")
            pp = s.get("patternProperties", {})
            if "^.*$" in pp and not props:
                fields["items"] = "&" + self.node(pp["^.*$"], depth + 1)
        if t == "array" and "items" in s and depth < MAX_DEPTH:
            fields["items"] = "&" + self.node(s["items"], depth + 1)
        return self.finish(key, fields)

    def emit_nullable(self, inner):
        self.n += 1
        name = f"n{self.n}"
        self.out.append(f"static const struct oc_node {name} = {{ OC_T_ANY, OC_F_NULLABLE, -1, -1, 0, 0, "
                        f"NULL, NULL, NULL, &{inner} }};")
        return name

    def finish(self, key, f):
        flags = " | ".join(f["flags"]) if f["flags"] else "0"
        body = (f"{f['type']}, {flags}, {f['minl']}, {f['maxl']}, {f['min']}, {f['max']}, {f['values']}, "
                f"{f['props']}, {f['required']}, {f['items']}")
        if body in self.bodies:
            name = self.bodies[body]
        else:
            self.n += 1
            name = f"n{self.n}"
            self.bodies[body] = name
            self.out.append(f"static const struct oc_node {name} = {{ {body} }};")
        self.memo[key] = name
        return name


def main():
    path = sys.argv[1]
    doc = json.load(open(path))
    defs = doc["definitions"]
    g = Gen(defs)
    connect = g.node(defs["ConnectParams"])
    table = []
    for m in sorted(set(METHODS) | set(EXTRA)):
        s = EXTRA.get(m) or defs[METHODS[m]]
        if m in OPTIONAL:
            s = dict(s, required=[r for r in s.get("required", []) if r not in OPTIONAL[m]])
        table.append((m, g.node(s)))
    print("/*\n * oc_schema_gen.c: GENERATED by tests/conformance/gen_oc_schema.py from\n"
          " * @openclaw/gateway-protocol's protocol.schema.json; do not edit.  The\n"
          " * ConnectParams tree and the params of every method chela implements, as\n"
          " * oc_node trees for the validator in oc_schema.c.\n */")
    print("#include \"api/oc_internal.h\"\n")
    print("/* clang-format off */")
    for line in g.out:
        print(line)
    print("/* clang-format on */\n")
    print(f"const struct oc_node *const ch_oc_connect_schema = &{connect};\n")
    print("const struct oc_method_schema ch_oc_method_schemas[] = {")
    for m, ref in table:
        print(f"    {{ {json.dumps(m)}, &{ref} }},")
    print("    { NULL, NULL },\n};")


if __name__ == "__main__":
    main()
