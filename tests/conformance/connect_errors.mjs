// connect_errors.mjs: the reference texts of OpenClaw's ConnectParams
// validation errors, computed by the real validators, for chela's own
// validator (src/api/oc_connect.c) to match.
//
//   node connect_errors.mjs < cases.json > expected.json
//
// Input: a JSON array of ConnectParams values.  Output: one object per
// case, {v4, v3}: v4 is what @openclaw/gateway-protocol (TypeBox 1.x
// Compile) says today; v3 is what the 2026.3.x gateway said: AJV 8 with
// allErrors over the same schema, written the way TypeBox 0.34 emitted it
// (enums as anyOf of string constants).  null means "valid".
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { ConnectParamsSchema, formatValidationErrors, validateConnectParams } from "@openclaw/gateway-protocol";

const require = createRequire(import.meta.url);
const Ajv = require("ajv");

// Turn {enum:[...]} into TypeBox 0.34's anyOf of {type:string, const}.
function toV3(schema) {
  if (Array.isArray(schema)) return schema.map(toV3);
  if (!schema || typeof schema !== "object") return schema;
  if (Array.isArray(schema.enum) && Object.keys(schema).length === 1)
    return { anyOf: schema.enum.map((v) => ({ type: "string", const: v })) };
  const out = {};
  for (const [k, v] of Object.entries(schema)) out[k] = toV3(v);
  return out;
}

const plain = JSON.parse(JSON.stringify(ConnectParamsSchema));
const ajv = new Ajv({ allErrors: true, strict: false, useDefaults: false });
const v3validate = ajv.compile(toV3(plain));

const cases = JSON.parse(readFileSync(0, "utf8"));
const out = cases.map((params) => {
  const ok4 = validateConnectParams(params);
  const v4 = ok4 ? null : formatValidationErrors(validateConnectParams.errors);
  const ok3 = v3validate(params);
  const v3 = ok3 ? null : formatValidationErrors(v3validate.errors);
  return { v4, v3 };
});
process.stdout.write(JSON.stringify(out, null, 1) + "\n");
