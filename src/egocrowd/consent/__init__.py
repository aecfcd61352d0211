"""Consent: versioned documents (families, revisions, language versions; Markdown texts identified by
their sha256), signatures with explicit scopes, withdrawal at any time, and the one check that a
worker's signature covers what a campaign does with their data. See docs/consent.md."""

from __future__ import annotations

from egocrowd.consent.documents import (
    authored_documents,
    check_campaign_document,
    clean_scopes,
    create_document,
    create_draft,
    diff,
    edit_draft,
    get_document,
    language_versions,
    list_documents,
    newest_published,
    previous_revision,
    publish,
    required_document,
    retire,
    revision_texts,
    text_in,
    text_sha256,
    usable_documents,
    version_name,
    workers_to_ask,
)
from egocrowd.consent.scopes import DATA_USE_SCOPES, SCOPE_WORDS, needed_scopes
from egocrowd.consent.signatures import (
    active_consent,
    active_in_revision,
    list_consents,
    require_cover,
    sign,
    signed_versions,
    withdraw,
)
from egocrowd.consent.text import diff_lines, parse_accept_language, pick_language, render_markdown

__all__ = [
    "DATA_USE_SCOPES",
    "SCOPE_WORDS",
    "active_consent",
    "active_in_revision",
    "authored_documents",
    "check_campaign_document",
    "clean_scopes",
    "create_document",
    "create_draft",
    "diff",
    "diff_lines",
    "edit_draft",
    "get_document",
    "language_versions",
    "list_consents",
    "list_documents",
    "needed_scopes",
    "newest_published",
    "parse_accept_language",
    "pick_language",
    "previous_revision",
    "publish",
    "render_markdown",
    "require_cover",
    "required_document",
    "retire",
    "revision_texts",
    "sign",
    "signed_versions",
    "text_in",
    "text_sha256",
    "usable_documents",
    "version_name",
    "withdraw",
    "workers_to_ask",
]
