"""Reviewer endpoints (`/api/reviews...`): list pending reviews, read one with its conversation,
decide it (approve/reject, once), and read its audit trail. Logic in shared/runs/reviews.py."""

from __future__ import annotations

import azure.functions as func
from azurefunctions.extensions.http.fastapi import JSONResponse, Request, Response

from shared.api.http import api, principal_of, read_json
from shared.api.openapi import documented
from shared.api.protocol import parse_id
from shared.core.errors import validated
from shared.runs import reviews, service

bp = func.Blueprint()
ANON = func.AuthLevel.ANONYMOUS
_OBJECT = {"type": "object"}
_ARRAY = {"type": "array", "items": {"type": "object"}}
_ID = {"review_id": {"type": "string", "format": "uuid"}}


def _review_id(req: Request) -> str:
    return parse_id(req.path_params["review_id"], "review")


@bp.route(route="reviews", methods=["GET"], auth_level=ANON)
@documented(
    summary="List reviews (pending by default)",
    query=reviews.ReviewQuery,
    response=_ARRAY,
    errors=[422],
    tags=["reviews"],
)
@api
async def list_reviews(req: Request) -> Response:
    """The tenant's reviews in a status, oldest first; filter by agent and age in seconds."""
    principal = await principal_of(req)
    query = validated(
        reviews.ReviewQuery, dict(req.query_params), "The query has invalid parameters."
    )
    return JSONResponse(await reviews.list_reviews(principal, query))


@bp.route(route="reviews/{review_id}", methods=["GET"], auth_level=ANON)
@documented(
    summary="Get a review with its conversation context",
    response=_OBJECT,
    errors=[404],
    path_params=_ID,
    tags=["reviews"],
)
@api
async def get_review(req: Request) -> Response:
    """One review, with the thread's recent messages as `context.messages`."""
    principal = await principal_of(req)
    return JSONResponse(await reviews.get_review(principal, _review_id(req)))


@bp.route(route="reviews/{review_id}/decision", methods=["POST"], auth_level=ANON)
@documented(
    summary="Approve or reject a review (once)",
    request=reviews.ReviewDecision,
    response=_OBJECT,
    errors=[404, 409],
    path_params=_ID,
    tags=["reviews"],
)
@api
async def decide_review(req: Request) -> Response:
    """Decide a pending review; the run resumes on any instance. A second decision is 409."""
    principal = await principal_of(req)
    body = await read_json(req, reviews.ReviewDecision)
    decided = await reviews.decide(principal, _review_id(req), body)
    if decided.resume is not None:
        await service.resume([decided.resume])
    return JSONResponse(decided.review)


@bp.route(route="reviews/{review_id}/audit", methods=["GET"], auth_level=ANON)
@documented(
    summary="A review's audit trail",
    response=_ARRAY,
    errors=[404],
    path_params=_ID,
    tags=["reviews"],
)
@api
async def review_audit(req: Request) -> Response:
    """Who requested, decided or expired the review, when, and with which comment."""
    principal = await principal_of(req)
    return JSONResponse(await reviews.review_audit(principal, _review_id(req)))
