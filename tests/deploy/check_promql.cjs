// Checks the PromQL in the alert rules and the Grafana dashboard against
// the list of metrics Keel exports (deploy/monitoring/metrics.txt):
//  - every expression parses (Prometheus' own lezer grammar; promtool
//    parses them too, see test_promql_names.sh);
//  - every metric a selector names is in the list (a histogram's _bucket,
//    _sum, _count included), and every label it matches on is one that
//    metric has, or one the scrape adds;
//  - every label in by/without/on/ignoring/group_x is a label of a metric
//    the expression names, or a scrape label (le for histograms).
// Usage: node check_promql.cjs METRICS.txt RULES.yml... DASHBOARD.json... [--emit-rules OUT.yml]
// --emit-rules writes the dashboard's expressions as recording rules, with
// Grafana's variables replaced, for promtool check rules.
"use strict";
const fs = require("fs");
const path = require("path");
const YAML = require("yaml");
const { parser } = require("@prometheus-io/lezer-promql");

const SCRAPE_LABELS = ["job", "instance", "zone", "namespace", "pod", "node"];

function readMetrics(file) {
  const metrics = new Map();  // series name -> Set of labels
  for (const [n, raw] of fs.readFileSync(file, "utf8").split("\n").entries()) {
    const line = raw.replace(/#.*/, "").trim();
    if (!line) continue;
    const [name, type, labels, source] = line.split(/\s+/);
    if (!source || !["counter", "gauge", "histogram"].includes(type)) {
      throw new Error(`${file}:${n + 1}: expected "name type labels source"`);
    }
    const set = new Set(labels === "-" ? [] : labels.split(","));
    if (type === "histogram") {
      metrics.set(`${name}_bucket`, new Set([...set, "le"]));
      metrics.set(`${name}_sum`, set);
      metrics.set(`${name}_count`, set);
    } else {
      metrics.set(name, set);
    }
  }
  return metrics;
}

// Grafana's variables, replaced so that the text is plain PromQL.
function degrafana(expr) {
  return expr
    .replace(/\$__rate_interval|\$__interval|\$\{__rate_interval\}|\$\{__interval\}/g, "5m")
    .replace(/\$\{?(\w+)\}?/g, ".*");
}

function text(expr, node) {
  return expr.slice(node.from, node.to);
}

function checkExpr(expr, metrics, where) {
  const errors = [];
  const tree = parser.parse(expr);
  const named = [];     // metric names in selectors
  const grouping = [];  // labels in by/without/on/ignoring/group_left/group_right
  const cur = tree.cursor();
  do {
    if (cur.type.isError) errors.push(`${where}: does not parse at offset ${cur.from}: ${JSON.stringify(expr.slice(cur.from, cur.from + 20))}`);
    if (cur.name === "VectorSelector") {
      const sel = cur.node;
      const id = sel.getChild("Identifier");
      let name = id ? text(expr, id) : null;
      const matchers = [];
      const lm = sel.getChild("LabelMatchers");
      if (lm) {
        for (const m of lm.getChildren("UnquotedLabelMatcher")) {
          const label = text(expr, m.getChild("LabelName"));
          const value = m.getChild("StringLiteral");
          if (label === "__name__") name = JSON.parse(text(expr, value));
          else matchers.push(label);
        }
        if (lm.getChildren("QuotedLabelMatcher").length || lm.getChildren("QuotedLabelName").length) {
          errors.push(`${where}: quoted label names are not used here`);
        }
      }
      if (!name) {
        errors.push(`${where}: a selector without a metric name`);
      } else if (!metrics.has(name)) {
        errors.push(`${where}: metric ${name} is not one Keel exports (deploy/monitoring/metrics.txt)`);
      } else {
        named.push(name);
        for (const l of matchers) {
          if (!metrics.get(name).has(l) && !SCRAPE_LABELS.includes(l)) {
            errors.push(`${where}: ${name} has no label ${l}`);
          }
        }
      }
    }
    if (cur.name === "GroupingLabels") {
      for (const l of cur.node.getChildren("LabelName")) grouping.push(text(expr, l));
    }
  } while (cur.next());
  const known = new Set([...SCRAPE_LABELS, ...named.flatMap((n) => [...metrics.get(n)])]);
  for (const l of grouping) if (!known.has(l)) errors.push(`${where}: groups by ${l}, a label none of its metrics has`);
  if (named.length === 0 && errors.length === 0) errors.push(`${where}: names no metric`);
  return errors;
}

// ---------------------------------------------------------------------------

const args = process.argv.slice(2);
let emit = null;
const ei = args.indexOf("--emit-rules");
if (ei >= 0) {
  emit = args[ei + 1];
  args.splice(ei, 2);
}
const metrics = readMetrics(args.shift());
const errors = [];
const dashboardRules = [];
let count = 0;
for (const file of args) {
  const base = path.basename(file);
  if (file.endsWith(".json")) {
    const dash = JSON.parse(fs.readFileSync(file, "utf8"));
    const panels = (dash.panels || []).flatMap((p) => (p.panels ? [p, ...p.panels] : [p]));
    for (const p of panels) {
      for (const t of p.targets || []) {
        if (!t.expr) continue;
        const expr = degrafana(t.expr);
        const where = `${base} panel ${p.id} "${p.title}" ${t.refId}`;
        errors.push(...checkExpr(expr, metrics, where));
        dashboardRules.push({ record: `dashboard:panel_${p.id}_${t.refId}`, expr });
        count++;
      }
    }
    for (const v of (dash.templating && dash.templating.list) || []) {
      const q = v.query && (typeof v.query === "string" ? v.query : v.query.query);
      const m = q && /^label_values\((.*),\s*(\w+)\)$/.exec(q);
      if (v.type === "query") {
        if (!m) errors.push(`${base} variable ${v.name}: expected label_values(selector, label)`);
        else errors.push(...checkExpr(degrafana(m[1]), metrics, `${base} variable ${v.name}`));
      }
    }
  } else {
    const doc = YAML.parse(fs.readFileSync(file, "utf8"));
    const groups = doc.groups || (doc.spec && doc.spec.groups) || [];
    for (const g of groups) {
      for (const r of g.rules || []) {
        const where = `${base} ${r.alert || r.record}`;
        errors.push(...checkExpr(String(r.expr), metrics, where));
        count++;
        if (r.record) metrics.set(r.record, new Set(SCRAPE_LABELS));
      }
    }
  }
}
if (emit) {
  fs.writeFileSync(emit, YAML.stringify({ groups: [{ name: "dashboard", rules: dashboardRules }] }));
}
for (const e of errors) console.log(`FAIL ${e}`);
console.log(errors.length ? `promql: ${errors.length} problems` : `promql: ${count} expressions name only exported metrics and labels`);
process.exit(errors.length ? 1 : 0);
