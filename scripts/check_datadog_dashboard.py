"""Deserializes a Datadog dashboard JSON into the official client's models (PyPI
datadog-api-client) and fails if any part is left unparsed (UnparsedObject, or a model flagged
_unparsed) or does not survive the round trip. Usage: python check_datadog_dashboard.py FILE"""
import json
import sys

from datadog_api_client import ApiClient, Configuration
from datadog_api_client.model_utils import ModelComposed, OpenApiModel, UnparsedObject
from datadog_api_client.v1.model.dashboard import Dashboard


def walk(node, path, problems):
    if isinstance(node, UnparsedObject):
        problems.append(f"{path}: unparsed {json.dumps(node.to_dict())[:300]}")
        return
    if isinstance(node, OpenApiModel):
        if getattr(node, "_unparsed", False):
            problems.append(f"{path}: {type(node).__name__} has unparsed parts")
        if isinstance(node, ModelComposed):
            for inner in node._composed_instances:
                walk(inner, f"{path}<{type(inner).__name__}>", problems)
        else:
            for key, value in node._data_store.items():
                walk(value, f"{path}.{key}", problems)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            walk(value, f"{path}[{i}]", problems)
    elif isinstance(node, dict):
        for key, value in node.items():
            walk(value, f"{path}.{key}", problems)


def main():
    text = open(sys.argv[1]).read()
    with ApiClient(Configuration()) as client:
        dashboard = client.deserialize(text, (Dashboard,), True)
    problems = []
    walk(dashboard, "dashboard", problems)
    if json.loads(json.dumps(dashboard.to_dict(), default=str)) != json.loads(text):
        problems.append("the parsed dashboard differs from the file (a key was dropped or changed)")
    if problems:
        print("\n".join(problems))
        sys.exit(1)
    widgets = len(dashboard.widgets)
    print(f"ok: {dashboard.title!r}, {widgets} widgets, all parsed")


main()
