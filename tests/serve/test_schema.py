"""Property-based tests of the REST API against its own OpenAPI schema (schemathesis): no
request the schema allows, however odd, gets a server error, an undocumented status or a
body that breaks the documented schema."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from gliomaseg.serve.app import Settings, create_app, load_predictors

TOKEN = "schema-token"


def test_api_conforms_to_its_schema(tmp_path):
    """With a token set, so that schemathesis also checks that a wrong or missing one is refused."""
    app = create_app(Settings(results=tmp_path / "jobs", max_upload_mb=1, token=TOKEN), load_predictors(["lgg"]))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 9
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def conforms(case):
            # Schema-valid is not enough for an upload: its content is checked by sniffing, so
            # random bytes are rightly refused (400, 415); every other check applies.
            case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, excluded_checks=[positive_data_acceptance])

        conforms()
