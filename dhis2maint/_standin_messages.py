"""The stand-in's DHIS2 messaging: ``POST /api/messageConversations`` (part of
:mod:`dhis2maint.testing`; standard library only).

As dhis2-core's ``MessageConversationController.postObject`` (2.36-2.43): any
logged-in user may send; every user id must exist (else 409 "User does not exist:
<uid>"), every user group too (else 404: "User Group does not exist: <uid>" on
2.36-2.39, "UserGroup with id <uid> could not be found." from 2.40); no recipients -> 409 "No recipients
selected."; a created conversation answers 201 with the WebMessage "Message
conversation created" and a ``Location`` header ending in its id.  Each one is
recorded in ``Dhis2StandIn.message_conversations`` (a list of dicts, oldest first).
"""
import threading
from typing import Any, Callable, Dict, List

from ._standin_http import _HttpError, _Response, _uid_from, _web_message

__all__ = ["register", "conversations"]

_LOCK = threading.Lock()


def conversations(owner):
    # type: (Any) -> List[Dict[str, Any]]
    """The conversations recorded by one stand-in (created on first use)."""
    with _LOCK:
        found = owner.__dict__.get("message_conversations")
        if found is None:
            found = owner.__dict__["message_conversations"] = []
        return found  # type: ignore[no-any-return]


def _ids(value):
    # type: (Any) -> List[str]
    out = []
    for item in value if isinstance(value, list) else []:
        if isinstance(item, dict) and item.get("id"):
            out.append(str(item["id"]))
    return out


def post_message_conversation(api, req):
    # type: (Any, Any) -> _Response
    body = req.json()
    if not isinstance(body, dict):
        raise _HttpError(400, "The request body is not a message conversation")
    owner = api.owner
    known_users = {_uid_from("user", name): name for name in owner.users}
    groups = getattr(owner, "user_groups", None) or {"wl5cDMuUhmF": list(owner.users)}
    users, group_ids = _ids(body.get("users")), _ids(body.get("userGroups"))
    recipients = set()
    for uid in users:
        if uid not in known_users:
            raise _HttpError(409, "User does not exist: " + uid)
        recipients.add(known_users[uid])
    for uid in group_ids:
        if uid not in groups:  # 2.40+ throws NotFoundException(UserGroup.class, uid)
            raise _HttpError(404, "UserGroup with id %s could not be found." % uid
                             if owner._minor >= 40 else "User Group does not exist: " + uid)
        recipients.update(groups[uid])
    if not recipients:
        raise _HttpError(409, "No recipients selected.")
    store = conversations(owner)
    with _LOCK:
        uid = _uid_from("conversation", len(store), body.get("subject"))
        store.append({"id": uid, "subject": body.get("subject"), "text": body.get("text"),
                      "users": users, "userGroups": group_ids,
                      "recipients": sorted(recipients), "sender": req.user})
    return _Response.json(_web_message(201, "Message conversation created"), 201, headers=[
        ("Location", req.base + "/api/messageConversations/" + uid)])


def register(route):
    # type: (Callable[..., Callable[[Callable[..., Any]], Any]]) -> None
    """Add this module's routes to the stand-in's route registry."""
    route("POST", r"messageConversations")(post_message_conversation)
