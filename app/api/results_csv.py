"""``GET /polls/{id}/results.csv``: a poll's results as a spreadsheet, by the access rules of
``Poll.results`` and ``Poll.voters``: counts for whoever may see them, and who voted for
managers of polls that are not anonymous (an anonymous poll's export names nobody)."""

from __future__ import annotations

import csv
import io

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.access.credentials import from_scope
from app.access.errors import AccessUnavailable, RateLimited
from app.access.gatekeeper import Gatekeeper
from app.access.policy import WRITE_POLLS, allows
from app.errors import PollyError
from app.polls.errors import PollInputError, poll_not_found
from app.polls.record import PollRecord
from app.polls.service import PollService
from app.polls.votes import VoteService, results_visible
from app.storage.ballots import Results

VOTERS_PER_PAGE = 1000


def _error(error: PollyError, status: int, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"errors": [error.formatted]}, status, headers=headers)


class ResultsExport:
    def __init__(self, gatekeeper: Gatekeeper, polls: PollService, votes: VoteService) -> None:
        self.gatekeeper = gatekeeper
        self.polls = polls
        self.votes = votes

    async def __call__(self, request: Request) -> Response:
        try:
            admitted = await self.gatekeeper.admit(from_scope(request.scope), None)
        except RateLimited as error:
            return _error(error, 429, {"Retry-After": str(error.retry_after)})
        except AccessUnavailable as error:
            return _error(error, 503, {"Retry-After": "30"})
        principal = admitted.principal
        if principal is None or principal.refused is not None or not principal.authenticated:
            reason = principal.refused if principal is not None and principal.refused else "Sign in first."
            return JSONResponse(
                {"errors": [{"message": reason, "extensions": {"code": "UNAUTHENTICATED"}}]},
                401,
                headers={"WWW-Authenticate": 'Bearer realm="polly"'},
            )
        raw = request.path_params["poll_id"]
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
            return _error(PollInputError("id", f"{raw[:40]!r} is not a poll id."), 400)
        try:
            readable = await self.polls.readable(principal, [int(raw)])
        except PollyError as error:
            return _error(error, 403)
        poll = readable.get(int(raw))
        if poll is None:
            return _error(poll_not_found(raw), 404)
        if not results_visible(poll, principal):
            return JSONResponse(
                {"errors": [{"message": f"Poll {poll.id}'s results are hidden until it closes.",
                             "extensions": {"code": "FORBIDDEN"}}]},
                403,
            )  # fmt: skip
        results = (await self.votes.results([poll.id])).get(poll.id)
        voters = None
        if not poll.anonymous and allows(principal, poll.guild_id, WRITE_POLLS):
            voters = await self._voters(poll)
        body = render(poll, results, voters)
        return Response(
            body,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="poll-{poll.id}-results.csv"'},
        )

    async def _voters(self, poll: PollRecord) -> list[tuple[int, int]]:
        """(user id, option position) of every choice, ballot by ballot."""
        rows: list[tuple[int, int]] = []
        for option in poll.options:
            after = None
            while True:
                page = await self.votes.ballots.voters(
                    poll.id, option.position, limit=VOTERS_PER_PAGE, after_ballot=after
                )
                rows += [(user, option.position) for _, user, _ in page]
                if len(page) < VOTERS_PER_PAGE:
                    break
                after = page[-1][0]
        return rows


def render(poll: PollRecord, results: Results | None, voters: list[tuple[int, int]] | None) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["position", "option", "votes"])
    counts = results.counts if results is not None else ()
    for option in poll.options:
        votes = counts[option.position] if option.position < len(counts) else 0
        writer.writerow([option.position, option.text, votes])
    writer.writerow([])
    writer.writerow(["voters", results.voters if results is not None else 0])
    if voters is not None:
        writer.writerow([])
        writer.writerow(["user_id", "position", "option"])
        texts = {o.position: o.text for o in poll.options}
        for user, position in voters:
            writer.writerow([str(user), position, texts[position]])
    return out.getvalue()
