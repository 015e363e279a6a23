#!/usr/bin/env node
// lint.mjs - checks an OpenAPI 3.1 document; exits 0 when it is valid.
//
//   node tools/openapi-lint/lint.mjs docs/openapi.json
//
// 1. The document against the official OpenAPI 3.1 JSON Schema, and every
//    $ref resolvable (@seriousme/openapi-schema-validator).
// 2. Every Schema Object in it (components and inline) compiled by Ajv as
//    JSON Schema 2020-12 in strict mode, so a misspelt keyword or a wrong
//    type of a keyword's value fails; every `default` and `examples` value
//    must validate against its own schema.
// 3. Rules the JSON Schema cannot say: path template parameters and `in:
//    path` parameters match one to one and are required, operationIds are
//    present and unique, security requirements name defined schemes, every
//    operation has a 2xx answer, and every 4xx/5xx answer with a body uses
//    the Error schema.
// Runs offline: everything comes from node_modules (npm ci).
import { readFileSync } from "node:fs";
import { Validator } from "@seriousme/openapi-schema-validator";
import Ajv2020 from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";

const addFormats = addFormatsModule.default ?? addFormatsModule;
const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
const problems = [];
const problem = (where, what) => problems.push(`${where}: ${what}`);

const file = process.argv[2];
if (!file) {
  console.error("usage: node lint.mjs <openapi.json>");
  process.exit(2);
}
let doc;
try {
  doc = JSON.parse(readFileSync(file, "utf8"));
} catch (e) {
  console.error(`openapi-lint: ${file}: ${e.message}`);
  process.exit(1);
}

// ---- 1. the OpenAPI 3.1 schema ----
const validator = new Validator();
const res = await validator.validate(structuredClone(doc));
if (!res.valid) {
  console.error(`openapi-lint: ${file} does not match the OpenAPI schema:`);
  console.error(JSON.stringify(res.errors, null, 2));
  process.exit(1);
}
if (validator.version !== "3.1") {
  problem("openapi", `expected version 3.1, found ${validator.version}`);
}

// ---- helpers ----
function resolvePointer(ref) {
  if (!ref.startsWith("#/")) {
    return undefined;
  }
  let node = doc;
  for (const raw of ref.slice(2).split("/")) {
    const key = decodeURIComponent(raw).replace(/~1/g, "/").replace(/~0/g, "~");
    if (node === null || typeof node !== "object" || !(key in node)) {
      return undefined;
    }
    node = node[key];
  }
  return node;
}
// Follows a Reference Object ($ref to a parameter, response, header, ...).
function deref(obj) {
  const seen = new Set();
  while (obj && typeof obj === "object" && typeof obj.$ref === "string") {
    if (seen.has(obj.$ref)) {
      return undefined;
    }
    seen.add(obj.$ref);
    obj = resolvePointer(obj.$ref);
  }
  return obj;
}

// ---- 2. every Schema Object as strict JSON Schema 2020-12 ----
// components.schemas are registered as the $defs of one schema resource,
// and every "#/components/schemas/X" reference is rewritten to point there.
const inline = []; // [where, schema]
function collectMedia(where, content) {
  for (const [type, media] of Object.entries(content ?? {})) {
    if (media.schema) {
      inline.push([`${where} ${type}`, media.schema]);
    }
  }
}
function collectParams(where, params) {
  for (const p of params ?? []) {
    const param = deref(p);
    if (param?.schema && !p.$ref) {
      inline.push([`${where} parameter ${param.name}`, param.schema]);
    }
  }
}
for (const [path, item] of Object.entries(doc.paths ?? {})) {
  collectParams(path, item.parameters);
  for (const m of METHODS) {
    const operation = item[m];
    if (!operation) {
      continue;
    }
    const where = `${m.toUpperCase()} ${path}`;
    collectParams(where, operation.parameters);
    if (operation.requestBody && !operation.requestBody.$ref) {
      collectMedia(`${where} requestBody`, operation.requestBody.content);
    }
    for (const [status, r] of Object.entries(operation.responses ?? {})) {
      if (!r.$ref) {
        collectMedia(`${where} ${status}`, r.content);
      }
    }
  }
}
const comps = doc.components ?? {};
for (const [name, p] of Object.entries(comps.parameters ?? {})) {
  if (p.schema) {
    inline.push([`components.parameters.${name}`, p.schema]);
  }
}
for (const [name, h] of Object.entries(comps.headers ?? {})) {
  if (h.schema) {
    inline.push([`components.headers.${name}`, h.schema]);
  }
}
for (const [name, r] of Object.entries(comps.responses ?? {})) {
  collectMedia(`components.responses.${name}`, r.content);
}

// strictRequired is off: it also flags `not: {required: [...]}`, which is how
// "these two fields exclude each other" is written.
const ajv = new Ajv2020({
  strict: true,
  strictRequired: false,
  allowUnionTypes: true,
  allErrors: true,
});
addFormats(ajv);
const BASE = "https://taskflow.invalid/openapi.json";
function rewriteRefs(schema) {
  return JSON.parse(
    JSON.stringify(schema).replace(/"\$ref":"#\/components\/schemas\//g, `"$ref":"${BASE}#/$defs/`),
  );
}
try {
  ajv.addSchema({ $id: BASE, $defs: rewriteRefs(comps.schemas ?? {}) });
} catch (e) {
  problem("components.schemas", e.message);
}
// An inline schema is compiled as a separate resource whose references
// point into the registered components.
let inlineCount = 0;
function wrap(schema) {
  inlineCount += 1;
  return { ...rewriteRefs(schema), $id: `https://taskflow.invalid/inline/${inlineCount}` };
}
for (const name of Object.keys(comps.schemas ?? {})) {
  let validate;
  try {
    validate = ajv.getSchema(`${BASE}#/$defs/${name}`);
  } catch (e) {
    problem(`components.schemas.${name}`, e.message);
    continue;
  }
  if (!validate) {
    problem(`components.schemas.${name}`, "cannot be compiled");
  }
}
for (const [where, schema] of inline) {
  try {
    ajv.compile(wrap(schema));
  } catch (e) {
    problem(where, e.message);
  }
}

// Every `default` and every `examples` entry must satisfy its own schema.
function checkValues(where, schema) {
  if (schema === null || typeof schema !== "object") {
    return;
  }
  if (Array.isArray(schema)) {
    schema.forEach((s, i) => checkValues(`${where}[${i}]`, s));
    return;
  }
  const values = [];
  if ("default" in schema) {
    values.push(["default", schema.default]);
  }
  if (Array.isArray(schema.examples)) {
    schema.examples.forEach((v, i) => values.push([`examples[${i}]`, v]));
  }
  if (values.length > 0) {
    const own = { ...schema };
    delete own.default;
    delete own.examples;
    let validate;
    try {
      validate = ajv.compile(wrap(own));
    } catch (e) {
      problem(where, e.message);
    }
    for (const [label, value] of values) {
      if (validate && !validate(value)) {
        problem(`${where}.${label}`, ajv.errorsText(validate.errors));
      }
    }
  }
  for (const [key, sub] of Object.entries(schema)) {
    if (key !== "default" && key !== "examples" && key !== "const" && key !== "enum") {
      checkValues(`${where}.${key}`, sub);
    }
  }
}
for (const [name, schema] of Object.entries(comps.schemas ?? {})) {
  checkValues(`components.schemas.${name}`, schema);
}
for (const [where, schema] of inline) {
  checkValues(where, schema);
}

// ---- 3. rules beyond the JSON Schema ----
function refersToError(schema, depth = 0) {
  if (!schema || depth > 10) {
    return false;
  }
  if (schema.$ref === "#/components/schemas/Error") {
    return true;
  }
  if (schema.$ref) {
    return refersToError(resolvePointer(schema.$ref), depth + 1);
  }
  return (schema.allOf ?? []).some((s) => refersToError(s, depth + 1));
}
const schemes = new Set(Object.keys(comps.securitySchemes ?? {}));
function checkSecurity(where, security) {
  for (const requirement of security ?? []) {
    for (const name of Object.keys(requirement)) {
      if (!schemes.has(name)) {
        problem(where, `security names undefined scheme '${name}'`);
      }
    }
  }
}
checkSecurity("security", doc.security);
const operationIds = new Map();
let operations = 0;
for (const [path, item] of Object.entries(doc.paths ?? {})) {
  const templated = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
  if (new Set(templated).size !== templated.length) {
    problem(path, "a path parameter appears twice");
  }
  const pathLevel = (item.parameters ?? []).map(deref);
  for (const m of METHODS) {
    const operation = item[m];
    if (!operation) {
      continue;
    }
    operations += 1;
    const where = `${m.toUpperCase()} ${path}`;
    if (!operation.operationId) {
      problem(where, "has no operationId");
    } else if (operationIds.has(operation.operationId)) {
      problem(where, `operationId '${operation.operationId}' is also used by ` +
        operationIds.get(operation.operationId));
    } else {
      operationIds.set(operation.operationId, where);
    }
    checkSecurity(where, operation.security);
    // Operation-level parameters override path-level ones of the same name and location.
    const params = new Map();
    for (const p of [...pathLevel, ...(operation.parameters ?? []).map(deref)]) {
      if (!p) {
        problem(where, "has an unresolvable parameter reference");
        continue;
      }
      params.set(`${p.in}:${p.name.toLowerCase()}`, p);
    }
    const inPath = [...params.values()].filter((p) => p.in === "path");
    for (const name of templated) {
      const p = inPath.find((q) => q.name === name);
      if (!p) {
        problem(where, `path parameter {${name}} is not declared`);
      } else if (p.required !== true) {
        problem(where, `path parameter {${name}} must be required`);
      }
    }
    for (const p of inPath) {
      if (!templated.includes(p.name)) {
        problem(where, `parameter '${p.name}' is in: path but not in the path`);
      }
    }
    const statuses = Object.keys(operation.responses ?? {});
    if (!statuses.some((s) => /^2/.test(s))) {
      problem(where, "has no 2xx response");
    }
    for (const status of statuses) {
      const r = deref(operation.responses[status]);
      if (!r) {
        problem(`${where} ${status}`, "unresolvable response reference");
        continue;
      }
      if (/^[45]/.test(status)) {
        const schema = r.content?.["application/json"]?.schema;
        if (!schema || !refersToError(schema)) {
          problem(`${where} ${status}`, "an error answer must use the Error schema");
        }
      }
    }
  }
}

if (problems.length > 0) {
  console.error(`openapi-lint: ${file}: ${problems.length} problem(s):`);
  for (const p of problems) {
    console.error(`  ${p}`);
  }
  process.exit(1);
}
console.log(`openapi-lint: ${file} is valid OpenAPI ${doc.openapi} ` +
  `(${Object.keys(doc.paths ?? {}).length} paths, ${operations} operations, ` +
  `${Object.keys(comps.schemas ?? {}).length} schemas)`);
