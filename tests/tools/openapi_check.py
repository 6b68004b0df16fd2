#!/usr/bin/python3
"""openapi_check.py - holds recorded HTTP responses to openapi.yaml.

usage: openapi_check.py openapi.yaml RECORDS

RECORDS has one response per line, tab-separated:
    METHOD  PATH  STATUS  CONTENT-TYPE  BODY-FILE
Each must be documented: the path (matched against the templates), the
method, the status code and the media type; a JSON body (application/json,
application/problem+json) must validate against its schema. Prints one line
per failure and "checked N responses, F failures"; exit status 1 on any.

The validator covers the JSON Schema subset openapi.yaml uses: $ref (local),
type (one or a list), const, enum, properties, required,
additionalProperties, items, minimum, maximum, minLength, pattern, oneOf,
anyOf, allOf. Annotations (description, format, content*, default,
examples) are ignored.
"""
import json
import re
import sys

import yaml

TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool))
    or (isinstance(v, float) and v.is_integer()),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
}


class Validator:
    def __init__(self, doc):
        self.doc = doc

    def resolve(self, schema):
        while isinstance(schema, dict) and "$ref" in schema:
            ref = schema["$ref"]
            if not ref.startswith("#/"):
                raise ValueError("only local $ref: " + ref)
            node = self.doc
            for part in ref[2:].split("/"):
                node = node[part.replace("~1", "/").replace("~0", "~")]
            schema = node
        return schema

    def errors(self, schema, value, where="$"):
        schema = self.resolve(schema)
        if schema is True or schema == {}:
            return []
        if schema is False:
            return [f"{where}: no value allowed"]
        out = []
        if "type" in schema:
            types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            if not any(TYPES[t](value) for t in types):
                return [f"{where}: {json.dumps(value)[:60]} is not of type {'/'.join(types)}"]
        if "const" in schema and value != schema["const"]:
            out.append(f"{where}: {value!r} is not {schema['const']!r}")
        if "enum" in schema and value not in schema["enum"]:
            out.append(f"{where}: {value!r} is not one of {schema['enum']}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if "minimum" in schema and value < schema["minimum"]:
                out.append(f"{where}: {value} < minimum {schema['minimum']}")
            if "maximum" in schema and value > schema["maximum"]:
                out.append(f"{where}: {value} > maximum {schema['maximum']}")
        if isinstance(value, str):
            if "minLength" in schema and len(value) < schema["minLength"]:
                out.append(f"{where}: shorter than {schema['minLength']}")
            if "pattern" in schema and not re.search(schema["pattern"], value):
                out.append(f"{where}: {value!r} does not match {schema['pattern']}")
        if isinstance(value, dict):
            props = schema.get("properties", {})
            for name in schema.get("required", []):
                if name not in value:
                    out.append(f"{where}: required property '{name}' missing")
            extra = schema.get("additionalProperties", True)
            for name, v in value.items():
                if name in props:
                    out += self.errors(props[name], v, f"{where}.{name}")
                elif extra is False:
                    out.append(f"{where}: property '{name}' is not documented")
                elif isinstance(extra, dict):
                    out += self.errors(extra, v, f"{where}.{name}")
        if isinstance(value, list) and "items" in schema:
            for i, v in enumerate(value):
                out += self.errors(schema["items"], v, f"{where}[{i}]")
        for s in schema.get("allOf", []):
            out += self.errors(s, value, where)
        if "anyOf" in schema and not any(not self.errors(s, value, where) for s in schema["anyOf"]):
            out.append(f"{where}: matches none of anyOf")
        if "oneOf" in schema:
            n = sum(1 for s in schema["oneOf"] if not self.errors(s, value, where))
            if n != 1:
                out.append(f"{where}: matches {n} of oneOf, not exactly 1")
        return out


def template_regex(template):
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile("^" + "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts) + "$")


def find_operation(doc, method, path):
    path = path.split("?")[0]
    for template, item in doc["paths"].items():
        if template_regex(template).match(path):
            return template, item.get(method.lower())
    return None, None


# Statuses any endpoint may answer, as openapi.yaml's description says.
GENERIC = ("401", "403", "405", "413", "429", "431", "503")


def problem_errors(v, resp, body_file, what):
    try:
        with open(body_file, "rb") as f:
            value = json.loads(f.read())
    except Exception as e:  # noqa: BLE001
        return [f"{what}: body is not JSON: {e}"]
    schema = resp["content"]["application/problem+json"]["schema"]
    return [f"{what}: {e}" for e in v.errors(schema, value)]


def check(doc, v, method, path, status, ctype, body_file):
    template, op = find_operation(doc, method, path)
    problem = {"content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    generic = status in GENERIC and ctype.startswith("application/problem+json")
    if template is None:
        if status == "404" and ctype.startswith("application/problem+json"):
            return problem_errors(v, problem, body_file, f"{method} {path}")
        return [f"path {path} is not in openapi.yaml"]
    if op is None:
        if status == "405" or method == "OPTIONS":
            return []  # answered by the HTTP layer for every path
        return [f"{method} {template} is not in openapi.yaml"]
    responses = op.get("responses", {})
    resp = responses.get(status) or responses.get(status[0] + "XX") or responses.get("default")
    if resp is None:
        if not generic:
            return [f"{method} {template}: status {status} is not documented"]
        resp = problem  # an answer any endpoint may give (openapi.yaml, info)
    resp = v.resolve(resp)
    media = ctype.split(";")[0].strip().lower()
    content = resp.get("content")
    if not content:
        if media and status != "204":
            return [f"{method} {template} {status}: documented without a body, got {media}"]
        return []
    if media not in content:
        return [f"{method} {template} {status}: media type {media!r} is not documented ({', '.join(content)})"]
    schema = content[media].get("schema")
    if schema is None or not (media.endswith("json")):
        return []
    try:
        with open(body_file, "rb") as f:
            value = json.loads(f.read())
    except Exception as e:  # noqa: BLE001 - any parse error is the finding
        return [f"{method} {template} {status}: body is not JSON: {e}"]
    return [f"{method} {template} {status}: {e}" for e in v.errors(schema, value)]


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        doc = yaml.safe_load(f)
    v = Validator(doc)
    failures = checked = 0
    with open(sys.argv[2]) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            method, path, status, ctype, body = line.split("\t")
            checked += 1
            errs = check(doc, v, method, path, status, ctype, body)
            if errs:
                failures += 1
                for e in errs[:5]:
                    print("schema:", e)
    print(f"checked {checked} responses, {failures} failures")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
