"""Releases (#12): immutable, versioned datasets of accepted clips for buyers.

- :mod:`~egocrowd.releases.exporting`: what exporters see (one :class:`ReleaseSpec` of de-identified
  clips) and the two registries they join: ``EXPORTERS`` (data formats: LeRobot v3.0, WebDataset,
  Hugging Face ``datasets``) and ``DESCRIBERS`` (metadata over the files written: Croissant, the data
  card).
- selection and cutting a release (eligible clips: accepted, consent active with the scopes the
  licence needs, not withdrawn), the build (exporters into a scratch folder, a manifest of every
  file's sha256, the root hash, blobs; nothing served until published), the diff with the previous
  version.
- buyers: access requests and grants, signed expiring download links, every download recorded.
- withdrawals: a withdrawn consent or a removal for cause takes the clip out of every later release,
  deletes its media after a grace period (a tombstone keeps the hashes), and notifies every buyer who
  downloaded a release containing it.

One layer above ``labels`` (it reads spans and agreement) and ``pay`` (pay figures for the data card);
only the doors and the worker's housekeeping import it. See docs/releases.md.
"""
