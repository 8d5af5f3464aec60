"""Talking to providers over HTTP and reading their JSON strictly: what every adapter needs and
none should write again."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import requests

from gateway_clients.base import GatewayUnavailable, WebhookInvalid


def call(
    provider: str, session: requests.Session, method: str, url: str, **kwargs: Any
) -> requests.Response:
    """One HTTP call; transport errors and 5xx become GatewayUnavailable (outcome unknown)."""
    path = urlsplit(url).path
    try:
        response = session.request(method, url, **kwargs)
    except requests.RequestException as exc:
        raise GatewayUnavailable(f"{provider} {method} {path}: {exc}") from exc
    if response.status_code >= 500:
        raise GatewayUnavailable(f"{provider} {method} {path} answered {response.status_code}")
    return response


def api_object(provider: str, response: requests.Response) -> dict[str, Any]:
    """The JSON object a response carries; anything else leaves the outcome unknown."""
    try:
        body = response.json()
    except (ValueError, RecursionError) as exc:
        raise GatewayUnavailable(f"{provider} answered {response.status_code}, not JSON") from exc
    if not isinstance(body, dict):
        raise GatewayUnavailable(f"{provider} answered {response.status_code}, not an object")
    return body


def webhook_object(provider: str, body: bytes) -> dict[str, Any]:
    """A verified webhook body as a JSON object."""
    try:
        event = json.loads(body)
    except ValueError as exc:
        raise WebhookInvalid(f"{provider} webhook body is not JSON") from exc
    except RecursionError as exc:  # nested deeper than the parser goes: no real event is
        raise WebhookInvalid(f"{provider} webhook body is nested too deeply") from exc
    if not isinstance(event, dict):
        raise WebhookInvalid(f"{provider} webhook body is not an object")
    return event


def required_str(data: Mapping[str, Any], key: str) -> str:
    """A field that must be a non-empty string."""
    value = data[key]
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} is not a non-empty string")
    return value


def required_int(data: Mapping[str, Any], key: str) -> int:
    """A field that must be an integer (and not a boolean)."""
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} is not an integer")
    return value
