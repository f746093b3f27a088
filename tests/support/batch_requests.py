"""Raw ``$batch`` requests for the Dataverse emulator tests: operations, change sets, answers.

Built by hand (not through the hooks) so the tests see the wire format the Web API
documents: ``multipart/mixed`` with ``application/http`` parts and change sets.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx


def operation(method: str, url: str, body: str | None = None, content_id: str | None = None) -> str:
    head = "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
    if content_id is not None:
        head += f"Content-ID: {content_id}\r\n"
    request = f"{method} {url} HTTP/1.1\r\n"
    if body is not None:
        request += f"Content-Type: application/json; type=entry\r\n\r\n{body}"
    else:
        request += "\r\n"
    return f"{head}\r\n{request}\r\n"


def batch_body(boundary: str, items: list[str | list[str]]) -> bytes:
    """Items are operations, or lists of operations (a change set)."""
    chunks = []
    for item in items:
        if isinstance(item, list):
            changeset = f"changeset_{uuid.uuid4()}"
            inner = "".join(f"--{changeset}\r\n{op}" for op in item) + f"--{changeset}--\r\n"
            chunks.append(
                f"--{boundary}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n{inner}"
            )
        else:
            chunks.append(f"--{boundary}\r\n{item}")
    return ("".join(chunks) + f"--{boundary}--\r\n").encode()


def send(api: httpx.Client, items: list[str | list[str]], **headers: str) -> httpx.Response:
    boundary = f"batch_{uuid.uuid4()}"
    return api.post(
        "$batch",
        content=batch_body(boundary, items),
        headers={"Content-Type": f'multipart/mixed; boundary="{boundary}"', **headers},
    )


def parts(response: httpx.Response) -> list[tuple[int, dict[str, str], str]]:
    """(status, headers, body) of every operation answer, change sets flattened."""
    answers = []
    for block in response.text.split("HTTP/1.1 ")[1:]:
        status_line, _, rest = block.partition("\r\n")
        head, _, body = rest.partition("\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in head.split("\r\n") if ": " in line)
        answers.append((int(status_line.split(" ", 1)[0]), headers, body.split("\r\n--", 1)[0].strip()))
    return answers
