#!/usr/bin/env bash
# Offline checks of the observability kit; no Docker needed.
#   - promtool check config / check rules / test rules (alerts + unit tests)
#   - every PromQL query of the dashboard and of the Tempo data source parses
#   - the dashboard is valid JSON with the expected uid; every YAML file parses
#   - every alert's runbook_url points at a heading of docs/runbook.md
# Needs promtool (Debian: apt-get install prometheus) and python3; PyYAML is
# used when installed (pip install pyyaml), else the YAML parse is skipped
# with a note. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")"

fail() { echo "check: FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }

command -v promtool >/dev/null || fail "promtool not found (Debian: apt-get install prometheus)"
command -v python3 >/dev/null || fail "python3 not found"

step "promtool check config"
promtool check config prometheus/prometheus.yml || fail "prometheus.yml"

step "promtool check rules"
promtool check rules prometheus/alerts.yml || fail "alerts.yml"

step "promtool test rules"
(cd prometheus && promtool test rules alerts_test.yml) || fail "alerts_test.yml"

step "dashboard JSON, YAML files, runbook anchors"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - "$tmp/queries.yml" <<'PY' || fail "dashboard / YAML / runbook"
import json, os, re, sys

errors = []

# --- dashboard ------------------------------------------------------------
with open("grafana/dashboards/voxpipe.json", encoding="utf-8") as f:
    dash = json.load(f)
if dash.get("uid") != "voxpipe":
    errors.append("dashboard uid is %r, want 'voxpipe'" % dash.get("uid"))
names = [v["name"] for v in dash.get("templating", {}).get("list", [])]
for want in ("datasource", "instance", "model", "language"):
    if want not in names:
        errors.append("dashboard variable %s missing" % want)
ids = [p["id"] for p in dash["panels"]]
if len(ids) != len(set(ids)):
    errors.append("duplicate panel ids")

# Grafana variables -> something PromQL parses, for `promtool check rules`.
def plain(expr):
    expr = expr.replace("$__tags", 'service="voxpipe"').replace("${__span.name}", "span")
    expr = expr.replace("$__rate_interval", "1m").replace("$__interval", "1m")
    return re.sub(r"\$\{?(\w+)\}?", ".*", expr)

exprs = []
for p in dash["panels"]:
    for t in p.get("targets", []):
        ds = (t.get("datasource") or p.get("datasource") or {}).get("type")
        if ds == "prometheus":
            exprs.append(("panel %r" % p["title"], t["expr"]))
        elif ds == "tempo" and not t.get("query", "").startswith("{"):
            errors.append("panel %r: TraceQL query expected" % p["title"])
        elif ds == "loki" and not t.get("expr", "").startswith("{"):
            errors.append("panel %r: LogQL stream selector expected" % p["title"])

# --- YAML -----------------------------------------------------------------
yaml_files = []
for root, _, files in os.walk("."):
    yaml_files += [os.path.join(root, n) for n in files if n.endswith((".yml", ".yaml"))]
try:
    import yaml
except ImportError:
    yaml = None
    print("note: PyYAML not installed (pip install pyyaml): YAML syntax not checked; "
          "promtool parsed the Prometheus files")
if yaml:
    for path in sorted(yaml_files):
        try:
            with open(path, encoding="utf-8") as f:
                doc = yaml.safe_load(f)
        except yaml.YAMLError as e:
            errors.append("%s: %s" % (path, e))
            continue
        if path.endswith("datasources.yaml"):
            uids = {d["name"]: d.get("uid") for d in doc["datasources"]}
            if sorted(uids.values()) != ["loki", "prometheus", "tempo"]:
                errors.append("datasource uids: %r" % uids)
            for d in doc["datasources"]:
                for q in d.get("jsonData", {}).get("tracesToMetrics", {}).get("queries", []):
                    # provisioning turns $$ into $
                    exprs.append(("tracesToMetrics %r" % q["name"], q["query"].replace("$$", "$")))
    print("parsed %d YAML files" % len(yaml_files))

# --- runbook anchors ------------------------------------------------------
runbook = next((p for p in ("../../docs/runbook.md", "../runbook.md") if os.path.exists(p)), None)
with open("prometheus/alerts.yml", encoding="utf-8") as f:
    urls = re.findall(r'runbook_url:\s*"([^"]+)"', f.read())
if len(urls) != 6:
    errors.append("expected 6 runbook_url annotations, found %d" % len(urls))
if runbook is None:
    print("note: docs/runbook.md not found next to the kit: anchors not checked")
else:
    def slug(h):  # GitHub's heading anchors
        h = re.sub(r"[^\w\- ]", "", h.strip().lower())
        return h.replace(" ", "-")
    with open(runbook, encoding="utf-8") as f:
        text = f.read()
    anchors = {slug(m) for m in re.findall(r"^#+\s+(.*)$", text, re.M)}
    anchors |= set(re.findall(r'<a (?:id|name)="([^"]+)"', text))
    for u in urls:
        if not u.startswith("docs/runbook.md#"):
            errors.append("runbook_url %s: not docs/runbook.md#..." % u)
        elif u.split("#", 1)[1] not in anchors:
            errors.append("runbook_url %s: no such heading in %s" % (u, runbook))
    for link in re.findall(r"\]\(#([^)]+)\)", text):
        if link not in anchors:
            errors.append("%s: link #%s has no heading" % (runbook, link))
    print("checked %d runbook anchors in %s" % (len(urls), runbook))

# --- PromQL of the dashboard and data sources: a rules file for promtool ---
with open(sys.argv[1], "w", encoding="utf-8") as f:
    f.write("groups:\n  - name: dashboard-queries\n    rules:\n")
    for i, (where, e) in enumerate(exprs):
        f.write("      - record: q%d  # %s\n        expr: %s\n" % (i, where.replace("\n", " "), json.dumps(plain(e))))
print("%d PromQL queries to parse" % len(exprs))

for e in errors:
    print("error:", e, file=sys.stderr)
sys.exit(1 if errors else 0)
PY

step "PromQL of the dashboard and the Tempo data source"
promtool check rules "$tmp/queries.yml" >/dev/null || { promtool check rules "$tmp/queries.yml"; fail "a dashboard query does not parse"; }
echo "  SUCCESS"

echo "check: all passed"
