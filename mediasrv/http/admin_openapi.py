"""The admin API (mediasrv/admin_api.py) described as OpenAPI 3.1, served at
``/admin/openapi.json`` and reproduced in docs/operations.md."""

from __future__ import annotations

from typing import Any

ERROR = {"$ref": "#/components/responses/Error"}
ROOM = {"name": "room", "in": "path", "required": True, "schema": {"type": "string"}}


def _op(
    summary: str,
    ok: str,
    *,
    status: str = "200",
    body: dict[str, Any] | None = None,
    errors: tuple[str, ...] = ("401", "404"),
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "security": [{"bearer": []}],
        "responses": {status: {"description": ok}, **{e: ERROR for e in errors}},
    }
    if body is not None:
        operation["requestBody"] = {
            "required": False,
            "content": {"application/json": {"schema": body}},
        }
    return operation


PRODUCER_IDS = {
    "type": "object",
    "properties": {"producerIds": {"type": "array", "items": {"type": "string"}, "maxItems": 64}},
}
LAYERS = {
    "type": "object",
    "properties": {
        "spatialLayer": {"type": ["integer", "null"], "minimum": 0},
        "temporalLayer": {"type": ["integer", "null"], "minimum": 0, "maximum": 3},
    },
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "mediasrv admin API",
        "version": "1",
        "description": "Rooms, peers, consumers and recordings of one mediasrv server. On "
        "only when admin_token is configured; every request carries it as a bearer token.",
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "responses": {
            "Error": {
                "description": "{error, message}",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "error": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        }
                    }
                },
            }
        },
    },
    "paths": {
        "/admin/rooms": {
            "get": _op(
                "Rooms with their peer and producer counts and recording", "rooms", errors=("401",)
            ),
        },
        "/admin/rooms/{room}": {
            "parameters": [ROOM],
            "get": _op("A room with every peer's live stats", "the room"),
            "delete": _op("Close a room; its peers get the notification removed", "closed"),
        },
        "/admin/rooms/{room}/peers/{peer}": {
            "parameters": [
                ROOM,
                {"name": "peer", "in": "path", "required": True, "schema": {"type": "string"}},
            ],
            "delete": _op("Remove a peer (notification removed, reason kicked)", "removed"),
        },
        "/admin/rooms/{room}/consumers/{consumer}/layers": {
            "parameters": [
                ROOM,
                {"name": "consumer", "in": "path", "required": True, "schema": {"type": "string"}},
            ],
            "put": _op(
                "Set a consumer's preferred simulcast and temporal layers",
                "the layers",
                body=LAYERS,
                errors=("400", "401", "404"),
            ),
        },
        "/admin/rooms/{room}/recording": {
            "parameters": [ROOM],
            "get": _op("The room's recording (running or last) with stats", "the recording"),
            "post": _op(
                "Start recording (the authorize_recording gates run)",
                "started",
                status="201",
                body=PRODUCER_IDS,
                errors=("400", "401", "403", "404", "409", "413", "503"),
            ),
            "delete": _op("Stop the recording", "stopped"),
        },
        "/admin/openapi.json": {"get": _op("This document", "OpenAPI 3.1", errors=("401",))},
    },
}
