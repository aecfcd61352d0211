"""Fixtures for the release tests: a lab with accepted, de-identified, consented clips (real video in
the blob store), and the tiny exporter the build tests register inside ``registry.scratch()``."""

from __future__ import annotations
