"""The scripted model: a deterministic stand-in for a real model, for offline use.

It is not an AI and is never shown as one: its name is "scripted (offline
demo)". It reads the conversation the way a model would (only the text the
agent sends) and plays a fixed script for the task, so the whole path (tool
loop, mediation, checkpoints, merges) runs for real without a network.
Each reply is a pure function of the conversation, so a restarted agent picks
up where the script stands.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from typing import Any

from .base import Reply, ToolCall, ToolSpec, Usage

SCRIPTED_NAME = "scripted (offline demo)"
_ids = itertools.count(1)

SCHEMA_SQL = """\
-- Database schema (written by the DB Schema task, scripted offline demo)
-- Decision: UUID for user IDs, separate sessions table.

CREATE TABLE users (
    id            UUID PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at    TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE sessions (
    id         UUID PRIMARY KEY,
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE INDEX sessions_user ON sessions (user_id);
"""

AUTH_DB_SESSIONS = '''\
"""Authentication with server-side sessions stored in the `sessions` table (see db/schema.sql)."""

import hashlib
import secrets
import uuid
from datetime import datetime, timedelta, timezone

SESSION_LIFETIME = timedelta(hours=12)


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, 200_000)
    return salt.hex() + ":" + digest.hex()


def verify_password(password: str, stored: str) -> bool:
    salt, _, _ = stored.partition(":")
    return secrets.compare_digest(hash_password(password, bytes.fromhex(salt)), stored)


def create_session(db, user_id: uuid.UUID) -> uuid.UUID:
    """Insert a row into `sessions` and return its id (the session token)."""
    session_id = uuid.uuid4()
    expires = datetime.now(timezone.utc) + SESSION_LIFETIME
    db.execute("INSERT INTO sessions (id, user_id, expires_at) VALUES (?, ?, ?)",
               (str(session_id), str(user_id), expires))
    return session_id


def end_session(db, session_id: uuid.UUID) -> None:
    db.execute("DELETE FROM sessions WHERE id = ?", (str(session_id),))
'''

AUTH_JWT = '''\
"""Authentication with signed JSON Web Tokens (stateless; users keyed by UUID, see db/schema.sql)."""

import base64
import hashlib
import hmac
import json
import time
import uuid

TOKEN_LIFETIME_SECONDS = 12 * 3600


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def issue_token(user_id: uuid.UUID, secret: bytes) -> str:
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps({"sub": str(user_id), "exp": int(time.time()) + TOKEN_LIFETIME_SECONDS}).encode())
    signature = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64(signature)}"


def verify_token(token: str, secret: bytes) -> bool:
    header, body, signature = token.split(".")
    expected = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return hmac.compare_digest(_b64(expected), signature)
'''


def _call(name: str, **arguments: Any) -> Reply:
    return Reply(tool_calls=[ToolCall(f"call_{next(_ids)}", name, arguments)], stop_reason="tool_use")


def _task_header(messages: list[dict[str, Any]]) -> tuple[str, str, str, str]:
    first = messages[0]["content"] if messages else ""
    title = re.search(r"^# Task: (.+)$", first, re.M)
    task_id = re.search(r"^id: (\S+)$", first, re.M)
    kind = re.search(r"^kind: (\S+)$", first, re.M)
    return (title.group(1) if title else "task", task_id.group(1) if task_id else "task",
            kind.group(1) if kind else "code", first)


def _tool_results(messages: list[dict[str, Any]]) -> list[str]:
    return [m["content"] for m in messages if m["role"] == "tool"]


def _script_for(title: str, kind: str) -> str:
    words = set(re.findall(r"[a-z]+", title.lower()))
    if kind == "docs":
        return "docs"
    if words & {"schema", "database", "db", "migration", "migrations", "model", "models"}:
        return "schema"
    if words & {"auth", "authentication", "login", "session", "sessions"}:
        return "auth"
    return "generic"


class ScriptedModel:
    """Plays the seed's example (schema -> auth -> docs) and a plain script for other tasks."""

    name = SCRIPTED_NAME

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay   # seconds per reply, to look like (and load like) a real model

    async def complete(self, system: str, messages: list[dict[str, Any]],
                       tools: list[ToolSpec]) -> Reply:
        if self.delay:
            await asyncio.sleep(self.delay)
        if any(tool.name == "submit_plan" for tool in tools):
            return self._plan(messages)
        title, task_id, kind, brief = _task_header(messages)
        step = sum(1 for m in messages if m["role"] == "assistant")
        name = _script_for(title, kind)
        script = getattr(self, f"_{name}")
        extra = {"messages": messages} if name == "generic" else {}
        reply = script(step, task_id, title, brief, _tool_results(messages), **extra)
        size = sum(len(m.get("content") or "") for m in messages) + len(system)
        reply.usage = Usage(input_tokens=size // 4, output_tokens=len(str(reply.tool_calls)) // 4)
        return reply

    def _plan(self, messages: list[dict[str, Any]]) -> Reply:
        """Asked to plan, it submits what the offline heuristic planner makes of the request."""
        from ..plan.decompose import OfflinePlanner
        found = re.search(r"^Request:\n(.*?)\n\nRepository:", messages[0]["content"] if messages else "",
                          re.S | re.M)
        plan = OfflinePlanner().plan(found.group(1) if found else "do the task")
        reply = _call("submit_plan", tasks=[t.to_dict() for t in plan.tasks])
        reply.usage = Usage(len(messages[0]["content"]) // 4 if messages else 0, 50)
        return reply

    def _schema(self, step: int, task_id: str, title: str, brief: str, results: list[str]) -> Reply:
        if step == 0:
            return _call("list_files", path=".")
        if step == 1:
            return _call("write_file", path="db/schema.sql", content=SCHEMA_SQL)
        if step == 2:
            return _call("share", context="Draft schema: users(id UUID, email, password_hash); a sessions "
                         "table is coming.", files=["db/schema.sql"])
        if step == 3:
            return _call("report_decision", category="data_model",
                         question="How should users and their sessions be stored?",
                         options=["UUID for user IDs, separate sessions table",
                                  "Integer IDs, session columns on users"],
                         proposed="UUID for user IDs, separate sessions table", confidence=0.92)
        return _call("finish", summary="Wrote db/schema.sql: users keyed by UUID and a separate "
                     "sessions table (user_id, expires_at) with an index on user_id.",
                     decisions=["UUID for user IDs, separate sessions table"],
                     context="Tables: users(id UUID, email, password_hash), sessions(id UUID, "
                     "user_id -> users.id, expires_at).")

    def _auth(self, step: int, task_id: str, title: str, brief: str, results: list[str]) -> Reply:
        has_schema = "db/schema.sql" in brief
        steps = (["read"] if has_schema else []) + ["decide", "write", "init", "finish"]
        action = steps[min(step, len(steps) - 1)]
        if action == "read":
            return _call("read_file", path="db/schema.sql")
        if action == "decide":
            reason = ("The schema has a sessions table, which suits server-side sessions; "
                      if has_schema else "")
            return _call("report_decision", category="auth",
                         question=f"{reason}JWT or database sessions for authentication?",
                         options=["JWT", "DB Sessions"], proposed="JWT", confidence=0.6)
        chosen = "JWT"
        for result in results:
            found = re.search(r"^chosen: (.+)$", result, re.M)
            if found:
                chosen = found.group(1).strip()
        sessions = "session" in chosen.lower()
        if action == "write":
            return _call("write_file", path="auth/sessions.py" if sessions else "auth/tokens.py",
                         content=AUTH_DB_SESSIONS if sessions else AUTH_JWT)
        if action == "init":
            module = "sessions" if sessions else "tokens"
            return _call("write_file", path="auth/__init__.py",
                         content=f'"""Auth module."""\n\nfrom .{module} import *  # noqa: F401,F403\n')
        built = ("auth/sessions.py: hash_password, verify_password, create_session, end_session "
                 "(rows in the sessions table)" if sessions else
                 "auth/tokens.py: issue_token, verify_token (HS256 JWT, users by UUID)")
        return _call("finish", summary=f"Built the auth module with {chosen}: {built}.",
                     decisions=[f"Authentication uses {chosen}"], context=built)

    def _docs(self, step: int, task_id: str, title: str, brief: str, results: list[str]) -> Reply:
        if step == 0:
            return _call("list_files", path=".")
        if step == 1:
            inputs = re.findall(r"^(?:Decisions|Context|Summary): (.+)$", brief, re.M)
            files = re.findall(r"^Files created: (.+)$", brief, re.M)
            lines = [f"# {title}", "", "_Written by the scripted offline demo from what the tasks "
                     "it depends on reported._", ""]
            if inputs or files:
                lines += ["## What was built", ""]
                lines += [f"- {text}" for text in inputs]
                lines += [f"- Files: {text}" for text in files]
            else:
                lines += ["No upstream task reported anything to document."]
            return _call("write_file", path="docs/API.md", content="\n".join(lines) + "\n")
        return _call("finish", summary="Wrote docs/API.md from the upstream tasks' reports.",
                     decisions=[], context="docs/API.md documents the modules built upstream.")

    def _generic(self, step: int, task_id: str, title: str, brief: str, results: list[str],
                 messages: list[dict[str, Any]] | None = None) -> Reply:
        """List the files, write a note from what is known, finish; when news arrives at
        finish (a partial input finished meanwhile), rewrite the note from it and finish again."""
        if step == 0:
            return _call("list_files", path=".")
        wrote = sum(1 for m in messages or [] if m["role"] == "assistant"
                    for c in m.get("tool_calls") or [] if c.name == "write_file")
        late = results[-1] if results and results[-1].startswith("not finished") else None
        if wrote == 0 or late:
            known = _updates(messages or []) or [brief.split("\n", 4)[-1].strip()]
            stage = "Revised after the final input arrived" if late else "Draft"
            return _call("write_file", path=f"osqr-demo/{task_id}.md",
                         content=f"# {title}\n\nScripted offline demo output: no model wrote this.\n\n"
                         f"{stage}, based on:\n\n" + "\n".join(f"- {k}" for k in known) + "\n")
        return _call("finish", summary=f"Wrote osqr-demo/{task_id}.md (scripted placeholder"
                     f"{', revised once its inputs finished' if wrote > 1 else ''}).", decisions=[], context="")


def _updates(messages: list[dict[str, Any]]) -> list[str]:
    """What the tasks this one depends on said, newest last (from briefs, updates, late news)."""
    found = []
    for m in messages:
        text = m.get("content") or ""
        found += re.findall(r"^(?:Context|Summary|Decisions): (.+)$", text, re.M)
    return found
