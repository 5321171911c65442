// Validates Kubernetes manifests offline against the API's schemas, for test_kubernetes.py.
//
//   node k8s_validate.js FILE...        each YAML document that is a Kubernetes object:
//                                       print "ok FILE#N Kind/name" or "error FILE#N ...";
//                                       exit 1 if any document failed
//   node k8s_validate.js --json FILE    the file's YAML documents as a JSON array
//
// Two checks per object: kubernetes-models' JSON-schema validation of the OpenAPI spec
// (types, required fields, enums, formats), and unknown fields (which that validation lets
// through but kubectl --validate=strict refuses): every key must be a property of the
// type's interface in kubernetes-models' declarations (.d.ts), walked recursively.
"use strict";
const fs = require("fs");
const path = require("path");
const YAML = require("yaml");

const MODELS = path.dirname(require.resolve("kubernetes-models/package.json"));
const NODE_MODULES = path.dirname(MODELS);

// apiVersion "apps/v1" -> kubernetes-models/apps/v1; "v1" -> kubernetes-models/v1.
function modelDir(apiVersion) {
  return path.join(MODELS, apiVersion);
}

// A declaration file's interface: { props: {name: type}, imports: {TypeName: file} }.
const declCache = new Map();
function decl(file) {
  if (declCache.has(file)) return declCache.get(file);
  const text = fs.readFileSync(file, "utf8");
  const imports = {};
  for (const m of text.matchAll(/import \{ (\w+) \} from "([^"]+)";/g)) {
    const spec = m[2];
    imports[m[1]] = spec.startsWith(".")
      ? path.resolve(path.dirname(file), spec + ".d.ts")
      : path.join(NODE_MODULES, spec + ".d.ts");
  }
  const body = text.match(/export interface I\w+(?: extends [\w, ]+)? \{\n([\s\S]*?)\n\}/);
  const props = {};
  if (body) {
    for (const line of body[1].split("\n")) {
      const m = line.match(/^ {4}"([^"]+)"\??: (.*?);?$/);
      if (m) props[m[1]] = m[2];
    }
  }
  const d = { props, imports };
  declCache.set(file, d);
  return d;
}

// The declaration file of the interface a property's type names, if it is one.
function typeFile(d, type) {
  const m = type.match(/^(?:Array<)?(I\w+)>?$/);
  return m && d.imports[m[1]] ? d.imports[m[1]] : null;
}

function unknownFields(value, file, where, errors) {
  if (value === null || typeof value !== "object") return;
  if (Array.isArray(value)) {
    value.forEach((v, i) => unknownFields(v, file, `${where}/${i}`, errors));
    return;
  }
  const d = decl(file);
  if (Object.keys(d.props).length === 0) return; // a scalar-like type (IntOrString, Quantity)
  for (const [k, v] of Object.entries(value)) {
    if (!(k in d.props)) {
      errors.push(`${where}/${k}: unknown field (not in ${path.basename(file, ".d.ts")})`);
      continue;
    }
    const sub = typeFile(d, d.props[k]);
    if (sub) unknownFields(v, sub, `${where}/${k}`, errors);
  }
}

function validate(obj) {
  const errors = [];
  if (!obj || typeof obj.apiVersion !== "string" || typeof obj.kind !== "string") {
    return { kind: null, errors: ["not a Kubernetes object (no apiVersion and kind)"] };
  }
  const dir = modelDir(obj.apiVersion);
  const dts = path.join(dir, obj.kind + ".d.ts");
  if (!fs.existsSync(dts)) {
    return { kind: obj.kind, errors: [`unknown apiVersion/kind ${obj.apiVersion} ${obj.kind}`] };
  }
  const Model = require(path.join(dir, obj.kind + ".js"))[obj.kind];
  try {
    new Model(obj).validate();
  } catch (e) {
    errors.push(String(e.message || e));
  }
  unknownFields(obj, dts, "", errors);
  return { kind: obj.kind, errors };
}

function main(argv) {
  if (argv[0] === "--json") {
    const docs = YAML.parseAllDocuments(fs.readFileSync(argv[1], "utf8"));
    for (const d of docs) {
      if (d.errors.length) throw new Error(`${argv[1]}: ${d.errors[0].message}`);
    }
    process.stdout.write(JSON.stringify(docs.map((d) => d.toJSON()).filter((d) => d !== null)));
    return 0;
  }
  let failed = 0;
  for (const file of argv) {
    const docs = YAML.parseAllDocuments(fs.readFileSync(file, "utf8"));
    docs.forEach((doc, i) => {
      if (doc.errors.length) {
        console.log(`error ${file}#${i} YAML: ${doc.errors[0].message}`);
        failed++;
        return;
      }
      const obj = doc.toJSON();
      if (obj === null) return;
      const r = validate(obj);
      const name = obj.metadata && obj.metadata.name;
      if (r.errors.length) {
        failed++;
        for (const e of r.errors) console.log(`error ${file}#${i} ${r.kind}/${name}: ${e}`);
      } else {
        console.log(`ok ${file}#${i} ${r.kind}/${name}`);
      }
    });
  }
  return failed ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
