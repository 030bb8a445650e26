#!/usr/bin/env python3
"""Validates soffa's SS 12000 fixtures against the schemas in tests/ss12000/schema.

    validate.py FILE...          exit 0 when every FILE is valid; prints each problem

Each page is checked against ss12000-v2.1-subset.schema.json (written from the
standard's field list), and each person of a /persons page also against
Skolverket's person.schema.json (copied from its reference implementation,
Apache-2.0). Uses python3-jsonschema (Debian), draft 2020-12, with formats.
"""
import json
import os
import sys

import jsonschema
from jsonschema import Draft202012Validator, FormatChecker

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMA = os.path.join(HERE, "schema")


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def main():
    subset = load(os.path.join(SCHEMA, "ss12000-v2.1-subset.schema.json"))
    store = {}
    for name in os.listdir(os.path.join(SCHEMA, "skolverket")):
        if name.endswith(".schema.json"):
            s = load(os.path.join(SCHEMA, "skolverket", name))
            store[s["$id"]] = s
    person = store["/schemas/person"]
    resolver = jsonschema.RefResolver(base_uri="", referrer=person, store=store)
    fmt = FormatChecker()
    pages = {k: Draft202012Validator({"$ref": "#/$defs/" + k, "$defs": subset["$defs"]}, format_checker=fmt)
             for k in ("PersonsPage", "OrganisationsPage", "CalendarEventsPage")}
    v_subset = Draft202012Validator(subset, format_checker=fmt)
    v_person = Draft202012Validator(person, resolver=resolver, format_checker=fmt)
    bad = 0
    for path in sys.argv[1:]:
        try:
            doc = load(path)
        except (ValueError, OSError) as e:
            print(f"{path}: not JSON: {e}")
            bad += 1
            continue
        v = v_subset   # a page is checked against the schema of its endpoint, told by its first item
        first = doc.get("data", [None])[0] if isinstance(doc, dict) and isinstance(doc.get("data"), list) and doc["data"] else None
        if isinstance(first, dict):
            v = pages["PersonsPage" if "givenName" in first else "OrganisationsPage" if "organisationType" in first
                      else "CalendarEventsPage"]
        problems = [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in v.iter_errors(doc)]
        if isinstance(doc, dict) and isinstance(doc.get("data"), list):
            for i, p in enumerate(doc["data"]):
                if isinstance(p, dict) and "givenName" in p:
                    problems += [f"data/{i}/{'/'.join(map(str, e.absolute_path))}: {e.message} (Skolverket's person schema)"
                                 for e in v_person.iter_errors(p)]
        for p in problems:
            print(f"{path}: {p}")
        bad += bool(problems)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
