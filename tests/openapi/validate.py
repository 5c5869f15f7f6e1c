"""Checks that a file is a valid OpenAPI 3.1 document, with openapi-spec-validator
(the version .ci/setup pins). Used by tests/openapi.rs on what the server serves.

    python3 tests/openapi/validate.py openapi.json
"""

import json
import sys

from openapi_spec_validator import OpenAPIV31SpecValidator, validate

with open(sys.argv[1], encoding="utf-8") as f:
    doc = json.load(f)
version = doc.get("openapi", "")
if not version.startswith("3.1."):
    sys.exit(f"not an OpenAPI 3.1 document: openapi = {version!r}")
# Raises (exit 1, with the failing path) on the first problem.
validate(doc, cls=OpenAPIV31SpecValidator)
print(f"valid OpenAPI {version}: {len(doc['paths'])} paths")
