// Validates Kubernetes manifests against the API's JSON schemas
// (kubernetes-models: Kubernetes 1.27; @kubernetes-models/prometheus-operator
// for PodMonitor and PrometheusRule), strictly: a field the schema does not
// know is an error, as `kubectl apply --validate=strict` would say. Then
// checks that the files agree with each other (selectors, ports, names,
// shutdown budget). Usage: node check_manifests.cjs FILE.yaml...
// Prints one line per document; exits 1 on the first file with an error.
"use strict";
const fs = require("fs");
const path = require("path");
const YAML = require("yaml");

// Module of the model class for an apiVersion and kind.
function modelModule(apiVersion, kind) {
  if (apiVersion.startsWith("monitoring.coreos.com/")) {
    return `@kubernetes-models/prometheus-operator/${apiVersion}/${kind}`;
  }
  return `kubernetes-models/${apiVersion}/${kind}`;
}

// The schema's compiled validate function, found through the model class.
function schemaValidator(apiVersion, kind) {
  let file;
  try {
    file = require.resolve(modelModule(apiVersion, kind));
  } catch {
    return null;
  }
  const m = /require\("((?:\.\.\/)+_schemas\/[^"]+\.js)"\)/.exec(fs.readFileSync(file, "utf8"));
  if (!m) throw new Error(`cannot find the schema of ${apiVersion} ${kind} in ${file}`);
  return require(path.resolve(path.dirname(file), m[1])).validate;
}

// Copies `v` into proxies that record which keys the validator reads. The
// compiled validators read every property their schema defines, and
// enumerate the keys of maps (labels, data, resources), so a key never read
// on an object never enumerated is one the schema does not define.
function tracked(v, where, seen) {
  if (Array.isArray(v)) return v.map((x, i) => tracked(x, `${where}[${i}]`, seen));
  if (v === null || typeof v !== "object") return v;
  const rec = { where, keys: Object.keys(v), read: new Set(), enumerated: false };
  seen.push(rec);
  const copy = {};
  for (const k of rec.keys) copy[k] = tracked(v[k], where ? `${where}.${k}` : k, seen);
  return new Proxy(copy, {
    get(t, k, r) {
      if (typeof k === "string") rec.read.add(k);
      return Reflect.get(t, k, r);
    },
    has(t, k) {
      if (typeof k === "string") rec.read.add(k);
      return Reflect.has(t, k);
    },
    ownKeys(t) {
      rec.enumerated = true;
      return Reflect.ownKeys(t);
    },
  });
}

function validate(doc) {
  const errors = [];
  if (!doc || typeof doc.apiVersion !== "string" || typeof doc.kind !== "string") {
    return ["not a Kubernetes object (apiVersion and kind)"];
  }
  const fn = schemaValidator(doc.apiVersion, doc.kind);
  if (!fn) return [`no schema for ${doc.apiVersion} ${doc.kind}: not validated, so refused`];
  const seen = [];
  const ok = fn(tracked(doc, "", seen));
  if (!ok) for (const e of fn.errors) errors.push(`${e.instancePath || "/"}: ${e.message || e.keyword} ${JSON.stringify(e.params)}`);
  for (const r of seen) {
    if (r.enumerated) continue;
    for (const k of r.keys) if (!r.read.has(k)) errors.push(`unknown field ${r.where ? r.where + "." : ""}${k}`);
  }
  return errors;
}

// ---------------------------------------------------------------------------
// Agreement between files (only for the kinds present).

function matches(selector, labels) {
  return Object.entries(selector || {}).every(([k, v]) => (labels || {})[k] === v);
}

function crossCheck(docs) {
  const errors = [];
  const of = (kind) => docs.filter((d) => d.kind === kind);
  const deployments = of("Deployment");
  const configMaps = new Map(of("ConfigMap").map((c) => [c.metadata.name, c]));
  const podsOf = (sel) => deployments.filter((d) => matches(sel, d.spec.template.metadata.labels));
  for (const cm of configMaps.values()) {
    for (const [k, v] of Object.entries(cm.data || {})) {
      if (k.endsWith(".json")) {
        try {
          JSON.parse(v);
        } catch (e) {
          errors.push(`ConfigMap ${cm.metadata.name} key ${k}: not JSON: ${e.message}`);
        }
      }
    }
  }
  for (const d of deployments) {
    const name = `Deployment ${d.metadata.name}`;
    const spec = d.spec.template.spec;
    if (!matches(d.spec.selector.matchLabels, d.spec.template.metadata.labels)) {
      errors.push(`${name}: selector does not match the pod template's labels`);
    }
    const volumes = new Map((spec.volumes || []).map((v) => [v.name, v]));
    for (const c of spec.containers) {
      const ports = new Set((c.ports || []).map((p) => p.name));
      for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"]) {
        const p = c[probe];
        if (!p) errors.push(`${name} container ${c.name}: no ${probe}`);
        else if (p.httpGet && typeof p.httpGet.port === "string" && !ports.has(p.httpGet.port)) {
          errors.push(`${name} container ${c.name}: ${probe} port ${p.httpGet.port} is not a container port`);
        }
      }
      for (const m of c.volumeMounts || []) {
        if (!volumes.has(m.name)) errors.push(`${name} container ${c.name}: mount ${m.name} has no volume`);
      }
      const sc = c.securityContext || {};
      if (sc.readOnlyRootFilesystem !== true || sc.allowPrivilegeEscalation !== false) {
        errors.push(`${name} container ${c.name}: needs readOnlyRootFilesystem and no privilege escalation`);
      }
      const r = c.resources || {};
      if (!r.requests || !r.limits) errors.push(`${name} container ${c.name}: needs requests and limits`);
      // Shutdown budget: preStop sleep + drain_delay + drain_timeout < grace.
      const cmd = ((c.lifecycle || {}).preStop || {}).exec?.command || [];
      const sleep = cmd[0] === "/bin/sleep" ? Number(cmd[1]) : NaN;
      const cfgArg = (c.args || []).find((a) => a.startsWith("--config="));
      const serveVol = [...volumes.values()].find((v) => v.configMap && (c.volumeMounts || []).some(
        (m) => m.name === v.name && cfgArg && cfgArg.slice("--config=".length).startsWith(m.mountPath + "/")));
      if (!Number.isFinite(sleep)) errors.push(`${name} container ${c.name}: preStop must be ["/bin/sleep", N]`);
      if (serveVol && configMaps.has(serveVol.configMap.name)) {
        const serve = JSON.parse(configMaps.get(serveVol.configMap.name).data["serve.json"] || "{}");
        const need = sleep + (serve.drain_delay_ms + serve.drain_timeout_ms) / 1000;
        if (!(spec.terminationGracePeriodSeconds > need)) {
          errors.push(`${name}: terminationGracePeriodSeconds ${spec.terminationGracePeriodSeconds} must exceed ` +
                      `preStop ${sleep} s + drain_delay + drain_timeout = ${need} s`);
        }
      } else if (configMaps.size > 0) {
        errors.push(`${name} container ${c.name}: --config=... is not on a ConfigMap volume of these files`);
      }
    }
    for (const v of volumes.values()) {
      if (v.configMap && configMaps.size > 0 && !configMaps.has(v.configMap.name)) {
        errors.push(`${name}: volume ${v.name} names ConfigMap ${v.configMap.name}, which is not in these files`);
      }
      for (const it of (v.configMap && configMaps.get(v.configMap.name) && v.configMap.items) || []) {
        if (!(it.key in (configMaps.get(v.configMap.name).data || {}))) {
          errors.push(`${name}: volume ${v.name} item ${it.key} is not a key of ConfigMap ${v.configMap.name}`);
        }
      }
    }
    const zones = (spec.topologySpreadConstraints || []).some((t) => t.topologyKey === "topology.kubernetes.io/zone");
    if (!zones) errors.push(`${name}: no topology spread over topology.kubernetes.io/zone`);
  }
  const portNames = new Set(deployments.flatMap((d) => d.spec.template.spec.containers.flatMap((c) => (c.ports || []).map((p) => p.name))));
  for (const kind of ["Service", "PodDisruptionBudget", "NetworkPolicy", "PodMonitor"]) {
    for (const o of of(kind)) {
      const sel = kind === "Service" ? o.spec.selector : kind === "NetworkPolicy" ? o.spec.podSelector.matchLabels : o.spec.selector.matchLabels;
      if (!o.spec.externalName && podsOf(sel).length === 0) errors.push(`${kind} ${o.metadata.name}: selects no pod of these files`);
      const ports = kind === "Service" ? (o.spec.ports || []).map((p) => p.targetPort)
        : kind === "PodMonitor" ? o.spec.podMetricsEndpoints.map((e) => e.port)
        : kind === "NetworkPolicy" ? (o.spec.ingress || []).flatMap((r) => (r.ports || []).map((p) => p.port)) : [];
      for (const p of ports) {
        if (typeof p === "string" && !portNames.has(p)) errors.push(`${kind} ${o.metadata.name}: port ${p} is not a container port`);
      }
    }
  }
  for (const h of of("HorizontalPodAutoscaler")) {
    const t = h.spec.scaleTargetRef;
    if (!deployments.some((d) => t.kind === "Deployment" && d.metadata.name === t.name)) {
      errors.push(`HorizontalPodAutoscaler ${h.metadata.name}: target ${t.kind} ${t.name} is not in these files`);
    }
    if (!h.spec.behavior || !h.spec.behavior.scaleUp || !h.spec.behavior.scaleDown) {
      errors.push(`HorizontalPodAutoscaler ${h.metadata.name}: scale-up and scale-down behaviour must be written out`);
    }
  }
  return errors;
}

// ---------------------------------------------------------------------------

const docs = [];
let failed = false;
for (const file of process.argv.slice(2)) {
  const parsed = YAML.parseAllDocuments(fs.readFileSync(file, "utf8"));
  for (const [i, d] of parsed.entries()) {
    const where = `${path.basename(file)}#${i}`;
    if (d.errors.length) {
      console.log(`FAIL ${where}: YAML: ${d.errors.map((e) => e.message).join("; ")}`);
      failed = true;
      continue;
    }
    const doc = d.toJS();
    if (doc === null) continue;
    const errors = validate(doc);
    console.log(`${errors.length ? "FAIL" : "ok  "} ${where} ${doc.apiVersion} ${doc.kind} ${doc.metadata?.name ?? ""}`);
    for (const e of errors) console.log(`       ${e}`);
    failed ||= errors.length > 0;
    docs.push(doc);
  }
}
if (!failed) {
  const errors = crossCheck(docs);
  for (const e of errors) console.log(`FAIL ${e}`);
  failed = errors.length > 0;
}
console.log(failed ? "manifests: FAILED" : `manifests: ${docs.length} documents valid`);
process.exit(failed ? 1 : 0);
