"""The OpenAI request format for :mod:`helpers.lm.server`: the fields it accepts, their checks, the
error body, and the server's limits (:class:`ServerOptions`; importable before Keras is).

A refused request raises :class:`ApiError`, answered as OpenAI does: ``{"error": {"message", "type",
"param", "code"}}`` with ``type`` ``invalid_request_error`` (every 4xx but 429, as OpenAI sends them),
``rate_limit_error`` (429) or ``server_error`` (5xx).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import orjson
from starlette.responses import Response

from helpers.lm.sampling import InvalidParams, SamplingParams
from helpers.serving.protocol import BODY_TIMEOUT_S

LOGGER = "maas.lm"
log = logging.getLogger(LOGGER)
DEFAULT_MODEL_NAME = "tang-poet"
DEFAULT_MAX_BODY_BYTES = 2**20  # a prompt fills at most the context: a few kilobytes of JSON
DEFAULT_REQUEST_TIMEOUT_S = 600.0  # then a request is cancelled, 504 (the official client's own default timeout)


@dataclass
class ServerOptions:
    name: str = DEFAULT_MODEL_NAME
    start_engine: bool = True  # False: the caller steps the engine (tests)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES  # a larger request body is refused with 413
    api_key: str | None = None  # set: every /v1 request needs "Authorization: Bearer <api_key>" (else 401)
    body_timeout_s: float = BODY_TIMEOUT_S  # a body not all arrived by then: 408
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S  # not finished by then: cancelled, 504


COMMON_FIELDS = set(
    "model stream stream_options max_tokens temperature top_p top_k stop seed n ignore_eos user".split()
)
# fields accepted only at their default, anything else refused naming the field (in Python 0 == 0.0 == False, 1 == True)
DEFAULT_ONLY = {
    **dict.fromkeys("logprobs echo presence_penalty frequency_penalty top_logprobs store".split(), (None, 0)),
    **dict.fromkeys(("logit_bias", "metadata"), (None, {})),
    "best_of": (None, 1),
    "parallel_tool_calls": (None, False, True),
    "suffix": (None, ""),
    "tools": (None, []),
    "tool_choice": (None, "none"),
    "response_format": (None, {"type": "text"}),
}
COMPLETION_FIELDS = COMMON_FIELDS | {"prompt"}
CHAT_FIELDS = COMMON_FIELDS | {"messages", "max_completion_tokens"}


class ApiError(Exception):
    """A refused request: HTTP ``status`` and OpenAI's ``{"error": {"message", "type", "param", "code"}}``."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None, headers=None):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.headers = status, message, param, code, headers or {}

    @property
    def kind(self) -> str:
        """OpenAI's error type for the status (OpenAI sends 401 and 404 as ``invalid_request_error`` too)."""
        if self.status >= 500:
            return "server_error"
        return "rate_limit_error" if self.status == 429 else "invalid_request_error"

    def response(self) -> Response:
        body = {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}
        fields = {"event": "refused", "status": self.status, "param": self.param, "error": self.message[:300]}
        (log.error if self.status >= 500 else log.warning)("refused", extra={"fields": fields})
        return Response(orjson.dumps(body), self.status, self.headers, "application/json")


def check_fields(data: dict, allowed: set[str]) -> None:
    for key, value in data.items():
        if key in DEFAULT_ONLY:
            if value not in DEFAULT_ONLY[key]:
                raise ApiError(400, f"{key}={value!r} is not supported by this server; leave it out", param=key)
        elif key not in allowed:
            raise ApiError(400, f"unrecognized request argument supplied: {key}", param=key)


def typed(data: dict, key: str, kinds, default):
    value = data.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise ApiError(400, f"{key} must be {names}, got {value!r}", param=key)
    return value


def sampling_from(data: dict, max_tokens: int) -> SamplingParams:
    """The request's :class:`SamplingParams` (``max_tokens`` already resolved), or ApiError 400."""
    n = typed(data, "n", (int,), 1)
    if n != 1:
        raise ApiError(400, f"n={n} is not supported: this server returns one choice per request (n=1)", param="n")
    stop = data.get("stop")
    stop = [] if stop is None else [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list):
        raise ApiError(400, f"stop must be a string or a list of strings, got {stop!r}", param="stop")
    try:
        return SamplingParams(
            max_tokens=max_tokens,
            temperature=typed(data, "temperature", (int, float), 1.0),
            top_p=typed(data, "top_p", (int, float), 1.0),
            top_k=typed(data, "top_k", (int,), 0),
            stop=tuple(stop),
            seed=typed(data, "seed", (int,), None),
            ignore_eos=typed(data, "ignore_eos", (bool,), False),
        )
    except InvalidParams as exc:
        raise ApiError(400, str(exc), param=exc.param) from None


def completion_prompt(data: dict) -> str:
    prompt = data.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        message = "prompt must be a string (or a list holding one string); token ids and batches of prompts are"
        raise ApiError(400, message + " not supported", param="prompt")
    return prompt


def chat_prompt(data: dict) -> str:
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty list of {role, content} objects", param="messages")
    parts = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant", "developer"):
            message = f"messages[{i}] must be an object with role system, user or assistant"
            raise ApiError(400, message, param="messages")
        content = m.get("content")
        if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
            if not all(
                isinstance(c, dict) and c.get("type") == "text" and isinstance(c.get("text"), str) for c in content
            ):
                raise ApiError(400, f"messages[{i}].content: only text parts are supported", param="messages")
            content = "".join(c["text"] for c in content)
        if not isinstance(content, str):
            raise ApiError(400, f"messages[{i}].content must be a string", param="messages")
        if m["role"] in ("user", "assistant"):
            parts.append(content)
    return "".join(parts)
