"""OpenAPI and Swagger documents read into service definitions, and calls checked against them."""

from __future__ import annotations

import json

import pytest

from schemas.services import ParameterLocation, UnknownOperation, call_problems
from services.adapters.service_documents import UnusableDocument, definition_of, read_document

BILLING = """
openapi: 3.1.0
info: {title: Billing, version: "1.2"}
servers: [{url: "http://127.0.0.1:9999/api/"}]
paths:
  /invoices:
    post:
      operationId: createInvoice
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/Invoice"}
      responses: {"201": {description: created}}
  /invoices/{id}:
    parameters:
      - {name: id, in: path, required: true, schema: {type: string}}
    get:
      parameters:
        - {name: expand, in: query, schema: {type: boolean}}
      responses: {"200": {description: the invoice}}
    delete:
      operationId: deleteInvoice
      responses: {"204": {description: gone}}
components:
  schemas:
    Invoice:
      type: object
      required: [amount]
      properties:
        amount: {type: integer, minimum: 0}
        lines: {type: array, items: {$ref: "#/components/schemas/Line"}}
    Line: {type: object, properties: {sku: {type: string}}}
"""

PETS = {
    "swagger": "2.0",
    "info": {"title": "Pets", "version": "1"},
    "host": "127.0.0.1:8080",
    "basePath": "/v1",
    "schemes": ["http"],
    "paths": {
        "/pets/{petId}": {
            "get": {
                "operationId": "getPet",
                "parameters": [{"name": "petId", "in": "path", "required": True, "type": "integer"}],
                "responses": {"200": {"description": "a pet"}},
            }
        },
        "/pets": {
            "post": {
                "parameters": [{"name": "pet", "in": "body", "required": True, "schema": {"$ref": "#/definitions/Pet"}}],
                "responses": {"201": {"description": "created"}},
            }
        },
        "/upload": {
            "post": {
                "consumes": ["multipart/form-data"],
                "parameters": [
                    {"name": "file", "in": "formData", "type": "file", "required": True},
                    {"name": "note", "in": "formData", "type": "string"},
                ],
                "responses": {"200": {"description": "stored"}},
            }
        },
    },
    "definitions": {
        "Pet": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#/definitions/Pet"}}},
        }
    },
}


def billing():
    return definition_of("billing", read_document(BILLING))


def test_an_openapi_31_document_gives_its_operations_by_id_or_method_and_path_with_refs_resolved():
    definition = billing()

    assert (definition.title, definition.version, definition.spec_version) == ("Billing", "1.2", "3.1.0")
    assert definition.base_url == "http://127.0.0.1:9999/api"
    assert sorted(definition.operations) == ["GET /invoices/{id}", "createInvoice", "deleteInvoice"]
    assert definition.warnings == ()
    create = definition.operation("createInvoice")
    assert (create.method, create.path, create.request_body.required) == ("POST", "/invoices", True)
    assert create.request_body.json_schema["properties"]["lines"]["items"] == {
        "type": "object",
        "properties": {"sku": {"type": "string"}},
    }
    read = definition.operation("get  /invoices/{id}")  # the method in any case, spaces forgiven
    assert [(p.name, p.location, p.required) for p in read.parameters] == [
        ("id", ParameterLocation.PATH, True),
        ("expand", ParameterLocation.QUERY, False),
    ]
    assert definition.operation("DELETE /invoices/{id}").key == "deleteInvoice"


def test_a_call_is_checked_against_the_operations_schemas_naming_each_bad_field():
    definition = billing()

    assert call_problems(definition, definition.operation("createInvoice"), {}, {"amount": 5}) == []
    assert call_problems(definition, definition.operation("createInvoice"), {}, {"amount": -1, "lines": [{"sku": 3}]}) == [
        (("body", "amount"), "-1 is less than the minimum of 0"),
        (("body", "lines", 0, "sku"), "3 is not of type 'string'"),
    ]
    assert call_problems(definition, definition.operation("createInvoice"), {}, None) == [
        (("body",), "required by createInvoice")
    ]
    assert call_problems(definition, definition.operation("GET /invoices/{id}"), {"expand": "yes", "colour": 1}, None) == [
        (("params", "id"), "required (path parameter of GET /invoices/{id})"),
        (("params", "expand"), "'yes' is not of type 'boolean'"),
        (("params", "colour"), "not a parameter of GET /invoices/{id}; it takes: id, expand"),
    ]
    assert call_problems(definition, definition.operation("deleteInvoice"), {"id": "a"}, {"why": "x"}) == [
        (("body",), "deleteInvoice takes no request body")
    ]


def test_an_unknown_operation_is_named_with_the_ones_there_are():
    with pytest.raises(UnknownOperation) as raised:
        billing().operation("refund")

    assert (
        str(raised.value)
        == "service 'billing' has no operation 'refund'; it has: GET /invoices/{id}, createInvoice, deleteInvoice"
    )


def test_a_swagger_20_document_gives_its_body_form_and_parameter_schemas_and_its_host():
    definition = definition_of("pets", read_document(json.dumps(PETS)))

    assert definition.base_url == "http://127.0.0.1:8080/v1"
    assert sorted(definition.operations) == ["POST /pets", "POST /upload", "getPet"]
    assert call_problems(definition, definition.operation("getPet"), {"petId": "x"}, None) == [
        (("params", "petId"), "'x' is not of type 'integer'")
    ]
    assert call_problems(definition, definition.operation("POST /pets"), {}, {"children": []}) == [
        (("body",), "'name' is a required property")
    ]
    upload = definition.operation("POST /upload").request_body
    assert (upload.media_types, upload.json_schema["required"]) == (("multipart/form-data",), ["file"])


def test_a_schema_that_contains_itself_resolves_once_and_takes_anything_where_it_recurs():
    pet = definition_of("pets", PETS).operation("POST /pets").request_body.json_schema

    assert pet["properties"]["children"]["items"] == {}


def test_an_imperfect_document_that_still_resolves_is_kept_with_the_validators_findings_as_warnings():
    document = read_document(BILLING)
    del document["info"]
    document["paths"]["/invoices"]["post"]["responses"]["201"] = {}  # a response needs a description

    definition = definition_of("billing", document)

    assert sorted(definition.operations) == ["GET /invoices/{id}", "createInvoice", "deleteInvoice"]
    assert definition.warnings, "the validator's findings are listed"
    assert '"info" is a required property' in definition.warnings
    assert '/paths/~1invoices/post/responses/201: "description" is a required property' in definition.warnings


def test_a_reference_outside_the_document_is_not_followed():
    document = read_document(BILLING)
    document["components"]["schemas"]["Line"] = {"$ref": "http://127.0.0.1:9/schemas.json#/Line"}

    definition = definition_of("billing", document)

    line = definition.operation("createInvoice").request_body.json_schema["properties"]["lines"]["items"]
    assert line == {}, "taken as any value, never fetched"
    assert any("http://127.0.0.1:9/schemas.json#/Line" in warning for warning in definition.warnings)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not: [valid", "not JSON or YAML"),
        ("- a list", "must be an OpenAPI or Swagger document"),
        ("title: no version field", "not an OpenAPI 3.0/3.1 or Swagger 2.0 document"),
        ("openapi: 3.0.3\ninfo: {title: t, version: '1'}", "no `paths`"),
        ("openapi: 3.0.3\npaths: {/a: {summary: nothing to call}}", "hold no operation"),
        ("openapi: 3.0.3\npaths: {/a: {get: {responses: {'200': {$ref: '#/nowhere'}}}}}", "a $ref does not resolve"),
    ],
)
def test_an_unusable_document_is_refused_naming_what_is_wrong(text, message):
    with pytest.raises(UnusableDocument) as refused:
        definition_of("broken", read_document(text))

    assert message in str(refused.value)
    assert refused.value.problems[0][0][0] == "document"
