# -*- test-case-name: tests.jmap.test_dispatch -*-
"""
Running the method calls of one JMAP request (RFC 8620 sections 3.3 to 3.7).

The L{Dispatcher} runs the calls strictly one after another: the next call
starts only when the previous one's Deferred has fired, so the writes and
reads of one request are ordered (RFC 8620 3.10).  For each call it

  1. finds the method by name, and answers C{unknownMethod} if there is none
     or if the request's C{using} lacks the method's capability (3.6.2);
  2. resolves C{"#"} result references against the responses so far (3.7);
  3. calls the method with the shared creation id map (3.3, 5.3);
  4. appends the method's responses, each with the call's id, or one
     C{"error"} response if it failed (3.6.2), and goes on with the next call.

It uses Deferreds but never the reactor.
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol, Union

from twisted.internet.defer import Deferred, inlineCallbacks, maybeDeferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from stalwart.jmap.errors import MethodError
from stalwart.jmap.pointer import resolve_references
from stalwart.jmap.request import Invocation, Request

__all__ = ["Method", "Dispatcher"]

_log = Logger()

Responses = list[tuple[str, dict]]


class Method(Protocol):
    """
    A JMAP method: a callable with a C{capability} attribute.

    It is called as C{method(arguments, context, created_ids)} with the
    resolved arguments, the request's opaque context, and the creation id
    map, to which it adds C{created_ids[creationId] = id} for each record it
    creates.  It returns (or fires its Deferred with) one or more C{(name,
    arguments)} responses, or raises L{MethodError}.
    """

    capability: str

    def __call__(
        self, arguments: dict, context: Any, created_ids: dict
    ) -> Union[Deferred[Responses], Responses]:
        ...


class _BadResponses(Exception):
    """
    A method returned something other than a non-empty list of
    C{(name, arguments)} pairs: a bug, reported as C{serverFail}.
    """


def _check_responses(responses: object) -> list[tuple[str, dict]]:
    if not isinstance(responses, (list, tuple)) or not responses:
        raise _BadResponses(f"expected a non-empty list of responses, got {responses!r:.200}")
    for response in responses:
        if (
            not isinstance(response, (list, tuple))
            or len(response) != 2
            or not isinstance(response[0], str)
            or not isinstance(response[1], dict)
        ):
            raise _BadResponses(f"expected a (name, arguments) pair, got {response!r:.200}")
    return [(name, arguments) for name, arguments in responses]


class Dispatcher:
    """
    Runs one JMAP request: method calls in order, result references,
    creation ids (RFC 8620 3.3-3.7).
    """

    def __init__(self, methods: Mapping[str, Method]) -> None:
        """
        @param methods: every method this server offers, by name
            (e.g. C{"Mailbox/get"}).
        """
        self._methods = dict(methods)

    def process(self, request: Request, context: Any) -> Deferred[dict]:
        """
        Run every call of C{request}.

        @param context: passed on to each method; this class only calls
            C{context.session_state()}, once, after the last call.
        @return: a Deferred firing with the Response object (RFC 8620 3.4).
            It never fails because of a method: failures become C{"error"}
            responses.
        """
        return self._process(request, context)

    @inlineCallbacks
    def _process(self, request: Request, context: Any) -> Any:
        created_ids = dict(request.created_ids or {})
        responses: list[Invocation] = []
        for call in request.method_calls:
            results = yield self._call(call, request.using, context, created_ids, responses)
            responses.extend(Invocation(name, arguments, call.call_id) for name, arguments in results)
        body: dict = {
            "methodResponses": [response.to_json() for response in responses],
            "sessionState": context.session_state(),
        }
        if request.created_ids is not None:
            body["createdIds"] = created_ids
        return body

    def _call(
        self,
        call: Invocation,
        using: tuple[str, ...],
        context: Any,
        created_ids: dict,
        previous: list[Invocation],
    ) -> Deferred[Responses]:
        """
        Run one call.

        @return: a Deferred firing with its responses, never failing.
        """
        method = self._methods.get(call.name)
        if method is None:
            return _error_now(MethodError("unknownMethod", f"no method named {call.name!r}"))
        if method.capability not in using:
            return _error_now(
                MethodError(
                    "unknownMethod",
                    f"{call.name} needs capability {method.capability!r} in 'using'",
                )
            )
        try:
            arguments = resolve_references(call.arguments, previous)
        except MethodError as e:
            return _error_now(e)
        d = maybeDeferred(method, arguments, context, created_ids)
        d.addCallback(_check_responses)
        d.addErrback(_to_error_response, call)
        return d


def _error_now(error: MethodError) -> Deferred[Responses]:
    return succeed([("error", error.to_json())])


def _to_error_response(failure: Failure, call: Invocation) -> Responses:
    """
    Turn a method's failure into its C{"error"} response: a L{MethodError}
    as it is, anything else as C{serverFail}, logged with its traceback.
    """
    if failure.check(MethodError):
        return [("error", failure.value.to_json())]
    _log.failure(
        "method {method} (call {call_id}) failed unexpectedly",
        failure=failure,
        method=call.name,
        call_id=call.call_id,
    )
    description = f"unexpected {failure.type.__name__} in {call.name}"
    return [("error", MethodError("serverFail", description).to_json())]
