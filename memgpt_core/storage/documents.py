"""Documents for ``memgpt load``: reading a text, Markdown or PDF file, and splitting it into passages.

A passage is at most ``max_tokens`` tokens, estimated at four characters a token (the same estimate the agent uses
when the server cannot count), so a page of five search results stays a small part of the agent's context. Splits
fall between paragraphs where they can, then between sentences, then between words; a Markdown heading always starts
a new passage, so a passage keeps the title of the section it comes from. PDF text comes from pypdf, an optional
extra (``pip install 'memgpt-core[pdf]'``), imported only when a PDF is read.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from memgpt_core.errors import MemGPTError

CHARS_PER_TOKEN = 4
TEXT_EXTENSIONS = (".txt", ".md", ".markdown", ".text", ".rst")
PDF_EXTENSIONS = (".pdf",)
DEFAULT_EXTENSIONS = (*TEXT_EXTENSIONS, *PDF_EXTENSIONS)
INSTALL_PDF = "pip install 'memgpt-core[pdf]'"


class UnreadableFileError(MemGPTError):
    """A file ``memgpt load`` could not read; the load reports it with its path and goes on with the others."""


def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UnreadableFileError(
            f"{path}: {exc.strerror or type(exc).__name__}", fix="check that the file exists and that you may read it"
        ) from None


def document_text(path: Path, data: bytes) -> str:
    """The text of a file already read as ``data``: decoded UTF-8, or a PDF's text layer."""
    if path.suffix.lower() in PDF_EXTENSIONS:
        return _pdf_text(path, data)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFileError(
            f"{path}: not UTF-8 text (byte {exc.start} is 0x{data[exc.start]:02x})",
            fix="convert it to UTF-8, or leave it out with --extensions",
        ) from None


def _pdf_text(path: Path, data: bytes) -> str:
    try:
        import pypdf
    except ImportError:
        raise UnreadableFileError(
            f"{path}: reading PDF files needs the pypdf package, which is not installed", fix=INSTALL_PDF
        ) from None
    import io
    import logging

    # pypdf logs what it repairs in a damaged file; the load reports the file in one line of its own instead.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise UnreadableFileError(f"{path}: the PDF is encrypted", fix="save an unencrypted copy and load that")
        pages = [page.extract_text() or "" for page in reader.pages]
    except UnreadableFileError:
        raise
    except Exception as exc:  # pypdf raises many kinds for a damaged file
        raise UnreadableFileError(
            f"{path}: pypdf could not read it ({type(exc).__name__}: {exc})", fix="check that it is a whole PDF file"
        ) from None
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    if not text:
        raise UnreadableFileError(
            f"{path}: the PDF has no text layer (a scan?)", fix="run it through OCR first, then load the result"
        )
    return text


_HEADING = re.compile(r"^#{1,6}\s+\S")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def split_passages(text: str, max_tokens: int, *, markdown: bool = False) -> list[str]:
    """``text`` as passages of at most ``max_tokens`` estimated tokens each, in order, none empty."""
    limit = max(40, max_tokens * CHARS_PER_TOKEN)
    blocks = _blocks(text, markdown=markdown)
    passages: list[str] = []
    current = ""
    for block, starts_section in blocks:
        for piece in _fit(block, limit):
            if current and (starts_section or len(current) + 2 + len(piece) > limit):
                passages.append(current)
                current = ""
            current = f"{current}\n\n{piece}" if current else piece
            starts_section = False
    if current:
        passages.append(current)
    return passages


def _blocks(text: str, *, markdown: bool) -> list[tuple[str, bool]]:
    """Paragraphs (blank-line separated, whitespace tidied), each marked when a Markdown heading starts it."""
    blocks: list[tuple[str, bool]] = []
    lines: list[str] = []

    def flush() -> None:
        paragraph = " ".join(" ".join(lines).split())
        if paragraph:
            blocks.append((paragraph, markdown and bool(_HEADING.match(lines[0].strip()))))
        lines.clear()

    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not line.strip():
            flush()
        elif markdown and _HEADING.match(line.strip()):
            flush()
            # A heading is its own block, joined to the paragraph after it (so it is never a passage alone).
            lines.append(line.strip())
            flush()
        else:
            lines.append(line)
    flush()
    # A heading directly followed by text travels with that text.
    merged: list[tuple[str, bool]] = []
    for block, heading in blocks:
        if merged and merged[-1][1] and "\n" not in merged[-1][0] and _HEADING.match(merged[-1][0]) and not heading:
            merged[-1] = (f"{merged[-1][0]}\n{block}", True)
        else:
            merged.append((block, heading))
    return merged


def _fit(block: str, limit: int) -> list[str]:
    """A paragraph cut to pieces of at most ``limit`` characters: between sentences, else between words, else hard."""
    if len(block) <= limit:
        return [block]
    pieces: list[str] = []
    current = ""
    for sentence in _SENTENCE_END.split(block):
        for part in _words(sentence, limit):
            if current and len(current) + 1 + len(part) > limit:
                pieces.append(current)
                current = ""
            current = f"{current} {part}" if current else part
    if current:
        pieces.append(current)
    return pieces


def _words(sentence: str, limit: int) -> list[str]:
    if len(sentence) <= limit:
        return [sentence]
    parts: list[str] = []
    current = ""
    for word in sentence.split():
        while len(word) > limit:  # one "word" longer than a passage (a URL, a base64 blob): cut it
            if current:
                parts.append(current)
                current = ""
            parts.append(word[:limit])
            word = word[limit:]
        if current and len(current) + 1 + len(word) > limit:
            parts.append(current)
            current = ""
        current = f"{current} {word}" if current else word
    if current:
        parts.append(current)
    return parts


def is_markdown(path: Path) -> bool:
    return path.suffix.lower() in (".md", ".markdown")
