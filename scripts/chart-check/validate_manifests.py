#!/usr/bin/env python3
"""Validates Kubernetes manifests offline, as strictly as an API server would.

* Built-in kinds: the JSON schemas bundled in kubernetes-validate, strict
  (an unknown field is an error). A built-in apiVersion/kind without a
  schema for the chosen Kubernetes version (removed or misspelled) is an
  error too, where kubernetes-validate alone would only warn.
* Custom resources: the openAPIV3Schema of their CRD (found among the
  inputs or given with --crd), with the API server's rules: nullable,
  int-or-string, preserve-unknown-fields, and unknown fields refused.
* Metadata: names (DNS-1123 / DNS-1035 where Kubernetes requires them),
  label keys and values, annotation keys.
* Anything else is an error.

Every problem is reported, not only the first. Exit status 1 when any
object is invalid. Adapted from the zookube research notes on offline chart
validation; CEL rules are checked by the Rust tests (kube's `cel` feature).
"""
import argparse
import re
import sys

import jsonschema
import kubernetes_validate.utils as kvu
import yaml
from referencing import Registry, Resource

DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
# Kinds whose names must be DNS labels rather than subdomains.
LABEL_NAMED = {
    "Service": DNS1035_LABEL,
    "Namespace": DNS1123_LABEL,
    "StatefulSet": DNS1123_LABEL,
    "Deployment": DNS1123_LABEL,
}
RBAC_KINDS = ("ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding")


def is_builtin_group(group):
    return group == "" or "." not in group or group.endswith(".k8s.io")


def split_api_version(api_version):
    return tuple(api_version.split("/", 1)) if "/" in api_version else ("", api_version)


class BuiltinSchemas:
    """kubernetes-validate's strict schemas for one Kubernetes version."""

    def __init__(self, kube_version):
        known = [v for v in kvu.all_versions() if kvu.major_minor(v) <= kvu.major_minor(kube_version)]
        if not known:
            sys.exit("error: no schemas for Kubernetes %s in kubernetes-validate" % kube_version)
        self.version = known[-1]
        self.dir = "kubernetes-json-schema/v%s-local-strict" % self.version
        definitions = kvu.schema_contents(self.dir + "/_definitions.json", kube_version)
        self.registry = Resource.from_contents(definitions) @ Registry()
        self.cache = {}

    def validator(self, api_version, kind):
        key = (api_version, kind)
        if key not in self.cache:
            api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
            try:
                schema = kvu.schema_contents("%s/%s-%s.json" % (self.dir, kind.lower(), api), self.version)
                registry = Resource.from_contents(schema) @ self.registry
                self.cache[key] = jsonschema.Draft202012Validator(schema, registry=registry)
            except FileNotFoundError:
                self.cache[key] = None
        return self.cache[key]


def crd_to_jsonschema(schema, root=False):
    """A CRD's structural schema as a JSON schema, as strict as the API server."""
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key.startswith("x-kubernetes-") or key in ("nullable", "format", "example", "externalDocs"):
            continue
        if key == "properties":
            out[key] = {name: crd_to_jsonschema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = crd_to_jsonschema(value) if isinstance(value, dict) else value
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [crd_to_jsonschema(sub) for sub in value]
        else:
            out[key] = value
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out = {"anyOf": [{"type": "integer"}, {"type": "string"}], **out}
    if schema.get("x-kubernetes-embedded-resource"):
        out["required"] = sorted(set(out.get("required", [])) | {"apiVersion", "kind"})
    if root:
        properties = out.setdefault("properties", {})
        properties.setdefault("apiVersion", {"type": "string"})
        properties.setdefault("kind", {"type": "string"})
        # ObjectMeta, whatever the CRD says (controller-gen writes a bare
        # `metadata: {type: object}`); metadata_errors checks it.
        properties["metadata"] = {"type": "object"}
    preserve = schema.get("x-kubernetes-preserve-unknown-fields") or schema.get("x-kubernetes-embedded-resource")
    if out.get("type") == "object" and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    if schema.get("nullable"):
        out = {"anyOf": [{"type": "null"}, out]}
    return out


class CrdSchemas:
    def __init__(self):
        self.by_gvk = {}

    def add(self, crd):
        spec = crd.get("spec", {})
        kind = spec.get("names", {}).get("kind")
        for version in spec.get("versions", []):
            raw = (version.get("schema") or {}).get("openAPIV3Schema")
            if raw is not None:
                validator = jsonschema.Draft4Validator(crd_to_jsonschema(raw, root=True))
                self.by_gvk[(spec.get("group"), version.get("name"), kind)] = (validator, version.get("served", True))

    def get(self, group, version, kind):
        return self.by_gvk.get((group, version, kind))


def describe(error):
    best = error
    while best.context:  # inside anyOf/oneOf: prefer the deepest non-null branch
        candidates = [e for e in best.context if not (e.validator == "type" and e.validator_value == "null")]
        best = max(candidates or best.context, key=lambda e: len(e.absolute_path))
    path = ".".join(str(p) for p in best.absolute_path) or "<root>"
    return "%s: %s" % (path, best.message[:300])


def metadata_errors(obj):
    errors = []
    meta = obj.get("metadata") or {}
    name, kind = meta.get("name"), obj.get("kind")
    if not name and not meta.get("generateName"):
        errors.append("metadata.name is missing")
    elif name:
        pattern, limit = LABEL_NAMED.get(kind, DNS1123_SUBDOMAIN), 63 if kind in LABEL_NAMED else 253
        if kind in RBAC_KINDS:
            pattern = re.compile(r"^[^/%]+$")
        if len(name) > limit or not pattern.match(name):
            errors.append("metadata.name %r is not a valid %s name" % (name, kind))
    for field in ("labels", "annotations"):
        for key, value in (meta.get(field) or {}).items():
            prefix, _, short = key.rpartition("/")
            if not LABEL_NAME.match(short) or len(short) > 63 or (prefix and not DNS1123_SUBDOMAIN.match(prefix)):
                errors.append("metadata.%s key %r is invalid" % (field, key))
            if field == "labels" and (not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.match(value)):
                errors.append("metadata.labels[%s] value %r is invalid" % (key, value))
    return errors


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", help="YAML files ('-' for standard input)")
    parser.add_argument("-k", "--kube-version", required=True, help="the Kubernetes version to check against")
    parser.add_argument("--crd", action="append", default=[], help="a YAML file of CRDs for custom resources")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only problems and the summary")
    args = parser.parse_args()

    documents = []
    for name in args.files:
        text = sys.stdin.read() if name == "-" else open(name).read()
        documents += [(name, d) for d in yaml.safe_load_all(text) if d]
    crds = CrdSchemas()
    for name in args.crd:
        for d in yaml.safe_load_all(open(name)):
            if d and d.get("kind") == "CustomResourceDefinition":
                crds.add(d)
    for _, d in documents:
        if isinstance(d, dict) and d.get("kind") == "CustomResourceDefinition":
            crds.add(d)

    builtin = BuiltinSchemas(args.kube_version)
    invalid = 0
    for name, obj in documents:
        if not isinstance(obj, dict) or "apiVersion" not in obj or "kind" not in obj:
            print("ERROR %s: a document without apiVersion and kind: %.80r" % (name, obj))
            invalid += 1
            continue
        api_version, kind = obj["apiVersion"], obj["kind"]
        group, version = split_api_version(api_version)
        ident = "%s %s/%s" % (api_version, kind, (obj.get("metadata") or {}).get("name"))
        errors = metadata_errors(obj)
        validator = builtin.validator(api_version, kind) if is_builtin_group(group) else None
        if validator is not None:
            errors += [describe(e) for e in validator.iter_errors(obj)]
        elif is_builtin_group(group):
            errors.append("no %s %s in Kubernetes %s (removed or misspelled?)" % (api_version, kind, builtin.version))
        elif crds.get(group, version, kind):
            crd_validator, served = crds.get(group, version, kind)
            if not served:
                errors.append("version %s of the CRD is not served" % version)
            errors += [describe(e) for e in crd_validator.iter_errors(obj)]
        else:
            errors.append("no schema for %s %s; pass its CRD with --crd" % (api_version, kind))
        for error in errors:
            print("ERROR %s %s: %s" % (name, ident, error))
        if errors:
            invalid += 1
        elif not args.quiet:
            print("valid %s %s" % (name, ident))
    print(
        "manifests: %d objects checked against Kubernetes %s (strict), %d invalid"
        % (len(documents), builtin.version, invalid)
    )
    return 1 if invalid else 0


if __name__ == "__main__":
    sys.exit(main())
