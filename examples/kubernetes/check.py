#!/usr/bin/env python3
"""Offline validation of rendered voxpipe manifests (run by check.sh).

    check.py RENDERED.yaml...        # exit 1 on the first file with problems

For every object of every file:
  - Kubernetes kinds: validated against the Kubernetes JSON schemas of each
    version in KUBE_VERSIONS, strictly (unknown fields are errors), with the
    `kubernetes-validate` package (which ships those schemas);
  - KEDA ScaledObject and Prometheus Operator ServiceMonitor: against the
    openAPIV3Schema of their CRDs, vendored in schemas/ (schemas/README.md),
    strictly too;
  - any other kind is an error (nothing unvalidated slips through).
Then the lint (the usual mistakes) on the file as a whole — see lint().
Each problem is printed as FILE: KIND/NAME: message.
"""

import json
import os
import re
import sys
import tomllib

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
# The oldest Kubernetes the manifests support (the preStop sleep action is
# on by default from 1.30) and the newest the schemas know.
KUBE_VERSIONS = ["1.30.0", "1.37.0"]


def load_crd_schemas():
    schemas = {}
    folder = os.path.join(HERE, "schemas")
    for name in sorted(os.listdir(folder)):
        if name.endswith(".json"):
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                doc = json.load(f)
            api = "%s/%s" % (doc["group"], doc["version"])
            schemas[(api, doc["kind"])] = strict(doc["schema"])
    return schemas


def strict(schema):
    """An OpenAPI v3 structural schema as strict JSON Schema: objects with
    `properties` and no `additionalProperties` refuse unknown fields (as the
    API server prunes them silently: a typo would be lost), and the
    x-kubernetes-int-or-string fields accept both."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if "properties" in out and "additionalProperties" not in out \
            and not out.get("x-kubernetes-preserve-unknown-fields"):
        props = dict(out["properties"])
        # metadata is the ObjectMeta the API server validates; apiVersion/kind
        # are at the top.
        out["properties"] = props
        out["additionalProperties"] = False
    return out


def validate_schemas(path, docs, crds):
    import jsonschema
    import kubernetes_validate

    problems = []
    for doc in docs:
        where = "%s/%s" % (doc.get("kind"), doc.get("metadata", {}).get("name"))
        key = (doc.get("apiVersion"), doc.get("kind"))
        if key in crds:
            body = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind", "metadata")}
            schema = dict(crds[key])
            props = dict(schema.get("properties", {}))
            for k in ("apiVersion", "kind", "metadata"):
                props.pop(k, None)
            schema["properties"] = props
            validator = jsonschema.Draft7Validator(schema)
            for e in sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path)):
                at = ".".join(str(p) for p in e.absolute_path) or "(top)"
                problems.append("%s: %s: schema (%s/%s CRD): %s: %s"
                                % (path, where, key[0], key[1], at, e.message))
            meta = doc.get("metadata", {})
            if not isinstance(meta.get("name"), str) or not meta["name"]:
                problems.append("%s: %s: metadata.name missing" % (path, where))
            continue
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.SchemaNotFoundError:
                problems.append("%s: %s: no schema for %s %s (not a Kubernetes kind, and no "
                                "CRD schema vendored in schemas/)" % (path, where, key[0], key[1]))
                break
            except kubernetes_validate.ValidationError as e:
                at = ".".join(str(p) for p in e.path) or "(top)"
                problems.append("%s: %s: schema (Kubernetes %s, strict): %s: %s"
                                % (path, where, version, at, e.message))
    return problems


def containers_of(doc):
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    return spec, spec.get("containers", []) + spec.get("initContainers", [])


def quantity_ok(v):
    return isinstance(v, (int, float)) or (isinstance(v, str) and re.fullmatch(r"[0-9.]+[a-zA-Z]*", v))


def lint(path, docs):
    """The usual mistakes, and voxpipe's own rules."""
    problems = []
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d.get("kind"), []).append(d)

    def bad(doc, message):
        problems.append("%s: %s/%s: %s" % (path, doc.get("kind"), doc.get("metadata", {}).get("name"), message))

    config_maps = {d["metadata"]["name"]: d for d in by_kind.get("ConfigMap", [])}
    deployments = by_kind.get("Deployment", [])
    if len(deployments) != 1:
        problems.append("%s: expected exactly one Deployment, found %d" % (path, len(deployments)))
    for dep in deployments:
        pod, containers = containers_of(dep)
        psc = pod.get("securityContext", {})
        labels = dep.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {})
        selector = dep.get("spec", {}).get("selector", {}).get("matchLabels", {})
        if any(labels.get(k) != v for k, v in selector.items()):
            bad(dep, "spec.selector does not match the pod template's labels")
        if pod.get("automountServiceAccountToken") is not False:
            bad(dep, "automountServiceAccountToken should be false (voxpipe never calls the API server)")
        if pod.get("hostNetwork") or pod.get("hostPID") or pod.get("hostIPC"):
            bad(dep, "host namespaces are shared with the pod")
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for c in containers:
            name = "container %s" % c.get("name")
            csc = c.get("securityContext", {})
            image = c.get("image", "")
            # ---- images: a tag or digest, never latest
            ref = image.split("@", 1)[0]
            tag = ref.rsplit(":", 1)[1] if ":" in ref.rsplit("/", 1)[-1] else None
            if "@sha256:" not in image and tag is None:
                bad(dep, "%s: image %r has no tag (that is :latest)" % (name, image))
            if tag == "latest":
                bad(dep, "%s: image %r uses the latest tag: pin a version (and a digest)" % (name, image))
            if "/" not in ref:
                bad(dep, "%s: image %r is not a registry path (kustomize `images:` not applied?)" % (name, image))
            # ---- resources: requests and limits for cpu and memory
            res = c.get("resources", {})
            for section in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    v = res.get(section, {}).get(r)
                    if v is None:
                        bad(dep, "%s: no resources.%s.%s" % (name, section, r))
                    elif not quantity_ok(v):
                        bad(dep, "%s: resources.%s.%s = %r is not a quantity" % (name, section, r, v))
            # ---- user and privileges
            run_as_user = csc.get("runAsUser", psc.get("runAsUser"))
            non_root = csc.get("runAsNonRoot", psc.get("runAsNonRoot"))
            if non_root is not True:
                bad(dep, "%s: runAsNonRoot is not true" % name)
            if run_as_user in (None, 0):
                bad(dep, "%s: runs as root (runAsUser %r): set a non-zero runAsUser" % (name, run_as_user))
            if csc.get("privileged"):
                bad(dep, "%s: privileged" % name)
            if csc.get("allowPrivilegeEscalation") is not False:
                bad(dep, "%s: allowPrivilegeEscalation is not false" % name)
            if csc.get("readOnlyRootFilesystem") is not True:
                bad(dep, "%s: readOnlyRootFilesystem is not true" % name)
            if "ALL" not in (csc.get("capabilities", {}).get("drop") or []):
                bad(dep, "%s: capabilities.drop does not include ALL" % name)
            if (csc.get("capabilities", {}).get("add") or []):
                bad(dep, "%s: adds capabilities %s" % (name, csc["capabilities"]["add"]))
            seccomp = csc.get("seccompProfile", psc.get("seccompProfile", {})).get("type")
            if seccomp not in ("RuntimeDefault", "Localhost"):
                bad(dep, "%s: no RuntimeDefault seccomp profile" % name)
            # ---- mounts: ConfigMaps as directories, never subPath
            for m in c.get("volumeMounts", []):
                if "subPath" in m or "subPathExpr" in m:
                    bad(dep, "%s: volume %s mounted with subPath at %s: a subPath mount never "
                        "sees ConfigMap updates, so pipeline edits would not reload"
                        % (name, m["name"], m.get("mountPath")))
                vol = volumes.get(m["name"])
                if vol is None:
                    bad(dep, "%s: mounts volume %s, which the pod does not define" % (name, m["name"]))
                elif "configMap" in vol and vol["configMap"]["name"] not in config_maps:
                    bad(dep, "volume %s: ConfigMap %s is not in the manifests" % (m["name"], vol["configMap"]["name"]))
        # ---- the voxpipe container
        vox = [c for c in containers if c.get("name") == "voxpipe"]
        if not vox:
            bad(dep, "no container named voxpipe")
            continue
        c = vox[0]
        for probe, want in (("startupProbe", "/readyz"), ("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            p = c.get(probe)
            if not p:
                bad(dep, "container voxpipe: no %s" % probe)
            elif p.get("httpGet", {}).get("path") != want:
                bad(dep, "container voxpipe: %s should GET %s, not %r" % (probe, want, p.get("httpGet", {}).get("path")))
        if (c.get("livenessProbe") or {}).get("httpGet", {}).get("path") == "/readyz":
            bad(dep, "container voxpipe: liveness on /readyz restarts a draining or loading pod")
        args = c.get("args", [])
        config_path = args[args.index("--config") + 1] if "--config" in args else None
        mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
        server = None
        if config_path is None:
            bad(dep, "container voxpipe: no --config")
        else:
            folder, file = os.path.split(config_path)
            vol = volumes.get(mounts.get(folder, ""), {})
            cm = config_maps.get(vol.get("configMap", {}).get("name"))
            if cm is None or file not in cm.get("data", {}):
                bad(dep, "--config %s: no ConfigMap mounted at %s with key %s" % (config_path, folder, file))
            else:
                try:
                    server = tomllib.loads(cm["data"][file])
                except tomllib.TOMLDecodeError as e:
                    bad(cm, "%s is not TOML: %s" % (file, e))
        if server is not None:
            pipelines = server.get("pipelines", "pipelines")
            vol = volumes.get(mounts.get(pipelines, ""), {})
            if "configMap" not in vol:
                bad(dep, "server.toml pipelines = %r: no ConfigMap mounted there as a directory" % pipelines)
            grace = float(server.get("limits", {}).get("shutdown_grace_s", 30.0))
            drain = float(server.get("limits", {}).get("drain_delay_s", 0.0))
            pre = (c.get("lifecycle", {}).get("preStop", {}) or {})
            pre_sleep = pre.get("sleep", {}).get("seconds", 0)
            if not pre:
                bad(dep, "container voxpipe: no preStop hook (the endpoint must be withdrawn before SIGTERM)")
            tgps = pod.get("terminationGracePeriodSeconds", 30)
            if tgps <= pre_sleep + drain + grace:
                bad(dep, "terminationGracePeriodSeconds %s <= preStop sleep %s + drain_delay_s %s + "
                    "shutdown_grace_s %s: in-flight requests would be killed" % (tgps, pre_sleep, drain, grace))
        env = {e["name"]: e for e in c.get("env", [])}
        if not any(n.startswith("OTEL_") for n in env):
            bad(dep, "container voxpipe: no OTEL_* variables (traces and logs go nowhere)")
        # ---- GPU: a GPU request needs the node selector and toleration
        gpu = c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu")
        device = (env.get("VOXPIPE_DEVICE") or {}).get("value") or (server or {}).get("device", "cpu")
        if device.startswith("cuda") and not gpu:
            bad(dep, "device %s without an nvidia.com/gpu limit" % device)
        if gpu:
            if not pod.get("nodeSelector") and not pod.get("affinity", {}).get("nodeAffinity"):
                bad(dep, "nvidia.com/gpu requested with no nodeSelector/nodeAffinity for GPU nodes")
            if not any(t.get("key") == "nvidia.com/gpu" for t in pod.get("tolerations", [])):
                bad(dep, "nvidia.com/gpu requested without a toleration for the nvidia.com/gpu taint")
            if not str(device).startswith("cuda"):
                bad(dep, "a GPU is requested but the device is %r" % device)

    # ---- the objects that point at the Deployment
    dep = deployments[0] if deployments else {}
    dep_name = dep.get("metadata", {}).get("name")
    pod_labels = dep.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {})
    for kind in ("Service", "PodDisruptionBudget"):
        objs = by_kind.get(kind, [])
        if not objs:
            problems.append("%s: no %s" % (path, kind))
        for o in objs:
            sel = o["spec"].get("selector", {})
            sel = sel.get("matchLabels", sel) if kind == "PodDisruptionBudget" else sel
            if not sel or any(pod_labels.get(k) != v for k, v in sel.items()):
                bad(o, "selector %s does not select the Deployment's pods" % sel)
    for pdb in by_kind.get("PodDisruptionBudget", []):
        if pdb["spec"].get("maxUnavailable") in (0, "0%") or pdb["spec"].get("minAvailable") in ("100%",):
            bad(pdb, "allows no voluntary disruption: node drains would hang")
    services = by_kind.get("Service", [])
    for sm in by_kind.get("ServiceMonitor", []):
        sel = sm["spec"].get("selector", {}).get("matchLabels", {})
        ports = [e.get("port") for e in sm["spec"].get("endpoints", [])]
        if not any(all(s["metadata"].get("labels", {}).get(k) == v for k, v in sel.items())
                   and all(p in [sp.get("name") for sp in s["spec"]["ports"]] for p in ports)
                   for s in services):
            bad(sm, "selects no Service with port(s) %s" % ports)
    scalers = by_kind.get("ScaledObject", []) + by_kind.get("HorizontalPodAutoscaler", [])
    if len(scalers) != 1:
        problems.append("%s: expected one autoscaler (ScaledObject or HorizontalPodAutoscaler), found %d"
                        % (path, len(scalers)))
    for s in scalers:
        ref = s["spec"].get("scaleTargetRef", {})
        if ref.get("name") != dep_name or ref.get("kind", "Deployment") != "Deployment":
            bad(s, "scaleTargetRef %s does not name the Deployment %s" % (ref, dep_name))
        lo = s["spec"].get("minReplicaCount", s["spec"].get("minReplicas", 1))
        hi = s["spec"].get("maxReplicaCount", s["spec"].get("maxReplicas"))
        if hi is None or lo > hi:
            bad(s, "replica bounds %s..%s" % (lo, hi))
        for t in s["spec"].get("triggers", []):
            md = t.get("metadata", {})
            if t.get("type") == "prometheus":
                if "tts_queue_length" not in md.get("query", ""):
                    bad(s, "the Prometheus trigger does not read tts_queue_length")
                try:
                    if float(md.get("threshold", "x")) <= 0:
                        raise ValueError
                except ValueError:
                    bad(s, "threshold %r is not a positive number" % md.get("threshold"))
    return problems


def main(argv):
    crds = load_crd_schemas()
    failed = False
    for path in argv:
        with open(path, encoding="utf-8") as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        problems = validate_schemas(path, docs, crds) + lint(path, docs)
        for p in problems:
            print("check: " + p, file=sys.stderr)
        if problems:
            failed = True
        else:
            print("%s: %d objects valid (Kubernetes %s strict, %d CRD schemas), lint clean"
                  % (path, len(docs), " and ".join(KUBE_VERSIONS), len(crds)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
